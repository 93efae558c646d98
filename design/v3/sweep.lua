-- sweep
-- KEYS: Q:jobs, Q:leases
-- ARGV: Q, deadline, cursor, count
-- One page of an HSCAN over Q:jobs, checked here so no record crosses the network: each running
-- job without a lease entry gets one until `deadline`. Returns {next cursor, found}.
local deadline, count = arg_int(ARGV[2], 0, MAX_COUNT), arg_int(ARGV[4], 1, 1000)
if not deadline then return refuse('sweep', 'deadline must be a time in ms') end
if not count then return refuse('sweep', 'count must be 1-1000') end
local page = redis.call('HSCAN', KEYS[1], ARGV[3], 'COUNT', count)
local fields, found = page[2], 0
for i = 1, #fields, 2 do
  local id, r = fields[i], load(fields[i + 1])
  if r and r[F_STATUS] == RUNNING and not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], deadline, id)
    found = found + 1
  end
end
return {page[1], found}
