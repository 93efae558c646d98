-- cancel
-- KEYS: Q:jobs, Q:later, Q:ready:io, Q:ready:cpu, Q:expiry
-- ARGV: Q, now, cancel channel, then ids
local q, now, channel = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT), ARGV[3]
if not now then return refuse('cancel', 'now must be a time in ms') end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return refuse('cancel', 'expected at least one id') end
local twice = repeated(ids)
if twice then return refuse('cancel', 'job ' .. twice .. ' is named twice') end
local raws = redis.call('HMGET', KEYS[1], unpack(ids))
local answers = {}
for j, id in ipairs(ids) do
  local r = load(raws[j])
  if r == nil then
    answers[j] = 'missing'
  elseif r == false then
    answers[j] = 'finished:failed'
  elseif r[F_STATUS] == QUEUED or r[F_STATUS] == RETRYING then
    redis.call('LREM', KEYS[3], 1, id)
    redis.call('LREM', KEYS[4], 1, id)
    redis.call('ZREM', KEYS[2], id)
    finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled before it ran'); put(id, r)
    answers[j] = 'cancelled'
  elseif r[F_STATUS] == RUNNING then
    if not has_flag(r, CANCEL_FLAG) then
      r[F_FLAGS] = (int_in(r[F_FLAGS], 0, MAX_COUNT) and r[F_FLAGS] or 0) + CANCEL_FLAG; put(id, r)
    end
    redis.call('PUBLISH', channel, q .. ' ' .. id)
    answers[j] = 'running'
  else
    answers[j] = 'finished:' .. NAMES[r[F_STATUS]]
  end
end
commit(KEYS[1], KEYS[5], q)
return answers
