-- sweep
-- KEYS: Q:jobs, Q:leases
-- ARGV: Q, deadline, then ids
local deadline = tonumber(ARGV[2])
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local raws = redis.call('HMGET', KEYS[1], unpack(ids))
local found = 0
for j, id in ipairs(ids) do
  local r = load(raws[j])
  if r and r[F_STATUS] == RUNNING and not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], deadline, id)
    found = found + 1
  end
end
return found
