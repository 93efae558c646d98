-- retry_dead
-- KEYS: Q:jobs, Q:dead, Q:ready:io, Q:ready:cpu, Q:revived
-- ARGV: Q, now, id
local now, id = tonumber(ARGV[2]), ARGV[3]
local r = load(redis.call('HGET', KEYS[1], id))
if r == nil then return 'missing' end
if r == false then return 'not_retryable:malformed' end
local st = r[F_STATUS]
if st ~= DEAD and st ~= FAILED and st ~= TIMED_OUT then return 'not_retryable:' .. NAMES[st] end
local bad = bad_field(r)
if bad then return 'not_retryable:malformed ' .. bad end
redis.call('ZREM', KEYS[2], id)
r[F_STATUS] = QUEUED; r[F_ATTEMPTS] = 0; r[F_STARTED] = 0; r[F_FINISHED] = 0; r[F_RETRY_AT] = 0
r[F_WORKER] = ''; r[F_FLAGS] = 0; r[F_RESULT] = ''; r[F_RETRIED] = now
-- Its old expiry member stays; Q:revived tells reap to check the record before deleting it.
redis.call('SADD', KEYS[5], id)
redis.call('HSET', KEYS[1], id, cmsgpack.pack(r))
redis.call('RPUSH', r[F_KIND] == 'io' and KEYS[3] or KEYS[4], id)
return 'queued'
