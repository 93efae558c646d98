-- fetch
-- KEYS: Q:ready:KIND, Q:jobs, Q:leases, Q:expiry
-- ARGV: Q, now, count, worker, lease_ms, lease_margin_ms
local q, now, count, worker = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local lease_ms, margin = tonumber(ARGV[5]), tonumber(ARGV[6] or '')
local ids = redis.call('LPOP', KEYS[1], count)
if not ids then return {} end
-- A request that waited in a cut-off worker's connection must not lease into Redis's past.
local t = math.max(now, redis_now())
local raws = redis.call('HMGET', KEYS[2], unpack(ids))
local out, leases = {}, {}
for i, id in ipairs(ids) do
  local r = load(raws[i])
  if r == false then
    local b = broken(now, 'record is not a version 3 record')
    finalize(id, b, FAILED, now); put(id, b)
  elseif r and r[F_STATUS] == QUEUED then
    local bad = bad_field(r)
    if bad then
      malformed(id, r, now, bad); put(id, r)
    elseif has_flag(r, CANCEL_FLAG) then
      finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled before it ran'); put(id, r)
    else
      r[F_ATTEMPTS] = r[F_ATTEMPTS] + 1
      r[F_TOKEN] = r[F_TOKEN] + 1
      r[F_STATUS] = RUNNING
      r[F_STARTED] = t
      r[F_WORKER] = worker
      put(id, r)
      local l = lease_ms
      if margin then l = math.min(lease_ms, r[F_TIMEOUT] + margin) end
      leases[#leases + 1] = t + l
      leases[#leases + 1] = id
      local o = #out
      out[o + 1] = id; out[o + 2] = r[F_TOKEN]; out[o + 3] = r[F_ATTEMPTS]; out[o + 4] = r[F_TYPE]
      out[o + 5] = r[F_PAYLOAD]; out[o + 6] = r[F_KIND]; out[o + 7] = r[F_MAX]; out[o + 8] = r[F_TIMEOUT]
    end
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
commit(KEYS[2], KEYS[4], q)
return out
