-- finish
-- KEYS: Q:jobs, Q:leases, Q:later, Q:dead, Q:expiry
-- ARGV: Q, now, then 7 per attempt: id, token, outcome, result_json, error_type, error_message, retry_delay_ms
local q, now = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT)
if not now then return refuse('finish', 'now must be a time in ms') end
local n = (#ARGV - 2) / 7
if n < 1 or n ~= math.floor(n) then return refuse('finish', 'expected 7 arguments per attempt after Q and now') end
local ids = {}
local outcomes = {succeeded = true, failed = true, timed_out = true, cancelled = true}
for j = 1, n do
  local b = 2 + (j - 1) * 7
  ids[j] = ARGV[b + 1]
  if not arg_int(ARGV[b + 2], 0, MAX_COUNT) then return refuse('finish', 'attempt ' .. j .. ': token must be a whole number') end
  if not outcomes[ARGV[b + 3]] then return refuse('finish', 'attempt ' .. j .. ': outcome must be succeeded, failed, timed_out or cancelled') end
  if not arg_int(ARGV[b + 7], -1, MAX_MS) then return refuse('finish', 'attempt ' .. j .. ': retry_delay_ms must be -1-' .. MAX_MS) end
end
local twice = repeated(ids)
if twice then return refuse('finish', 'job ' .. twice .. ' is named twice') end
local raws = redis.call('HMGET', KEYS[1], unpack(ids))
local statuses, unleased, later, dead = {}, {}, {}, {}
for j = 1, n do
  local b = 2 + (j - 1) * 7
  local id, token, outcome = ids[j], tonumber(ARGV[b + 2]), ARGV[b + 3]
  local result, error_type, error_message, delay = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], tonumber(ARGV[b + 7])
  local r = load(raws[j])
  if r == false then
    local broken_rec = broken(now, 'record is not a version 3 record')
    finalize(id, broken_rec, FAILED, now); put(id, broken_rec)
    unleased[#unleased + 1] = id
    statuses[j] = 'failed'
  elseif not r or r[F_TOKEN] ~= token then
    statuses[j] = 'stale'
  elseif r[F_STATUS] ~= RUNNING then
    -- This call's own write, seen again by a retry after a dropped connection, is not stale:
    -- same token, same time, and a status and error this outcome leads to.
    local st = r[F_STATUS]
    local same_error = r[F_ERROR_TYPE] == error_type or st == CANCELLED
    local own_final = st >= SUCCEEDED and r[F_FINISHED] == now
      and ((outcome == 'succeeded') == (st == SUCCEEDED)) and (st == SUCCEEDED or same_error)
    local own_retry = st == RETRYING and r[F_RETRY_AT] == now + delay and r[F_ERROR_TYPE] == error_type
    if own_final or own_retry then
      statuses[j] = NAMES[r[F_STATUS]]
    else
      statuses[j] = 'stale'
    end
  else
    unleased[#unleased + 1] = id
    local bad = (not int_in(r[F_ATTEMPTS], 0, MAX_COUNT) and 'attempts') or (not int_in(r[F_MAX], 1, 1001) and 'max_attempts')
      or (not int_in(r[F_TTL], 1, MAX_MS) and 'result_ttl_ms') or nil
    if bad then
      malformed(id, r, now, bad)
    elseif outcome == 'succeeded' then
      -- An earlier attempt (or a reclaim) may have left an error behind.
      r[F_RESULT] = result; r[F_ERROR_TYPE] = ''; r[F_ERROR_MESSAGE] = ''; r[F_RETRY_AT] = 0
      finalize(id, r, SUCCEEDED, now)
    elseif has_flag(r, CANCEL_FLAG) then
      finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled while running')
    elseif outcome == 'cancelled' then
      finalize(id, r, CANCELLED, now, error_type, error_message)
    elseif delay >= 0 and r[F_ATTEMPTS] < r[F_MAX] then
      r[F_STATUS] = RETRYING; r[F_RETRY_AT] = now + delay
      r[F_ERROR_TYPE] = error_type; r[F_ERROR_MESSAGE] = error_message
      later[#later + 1] = now + delay; later[#later + 1] = id
    elseif r[F_MAX] > 1 then
      finalize(id, r, DEAD, now, error_type, error_message)
      dead[#dead + 1] = now; dead[#dead + 1] = id
    else
      finalize(id, r, outcome == 'timed_out' and TIMED_OUT or FAILED, now, error_type, error_message)
    end
    put(id, r)
    statuses[j] = NAMES[r[F_STATUS]]
  end
end
if #unleased > 0 then redis.call('ZREM', KEYS[2], unpack(unleased)) end
if #later > 0 then redis.call('ZADD', KEYS[3], unpack(later)) end
if #dead > 0 then redis.call('ZADD', KEYS[4], unpack(dead)) end
commit(KEYS[1], KEYS[5], q)
return statuses
