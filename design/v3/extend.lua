-- extend
-- KEYS: Q:jobs, Q:leases
-- ARGV: Q, deadline, lease_ms, then pairs id, token
local deadline = math.max(tonumber(ARGV[2]), redis_now() + tonumber(ARGV[3]))
local ids, tokens = {}, {}
for i = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[i]; tokens[#ids] = tonumber(ARGV[i + 1]) end
if #ids == 0 then return {} end
local raws = redis.call('HMGET', KEYS[1], unpack(ids))
local renew, stop = {}, {}
for i, id in ipairs(ids) do
  local r = load(raws[i])
  if r and r[F_STATUS] == RUNNING and r[F_TOKEN] == tokens[i] then
    renew[#renew + 1] = deadline; renew[#renew + 1] = id
    if has_flag(r, CANCEL_FLAG) then stop[#stop + 1] = id; stop[#stop + 1] = 'cancel' end
  else
    stop[#stop + 1] = id; stop[#stop + 1] = 'lost'
  end
end
if #renew > 0 then redis.call('ZADD', KEYS[2], 'XX', unpack(renew)) end
return stop
