-- enqueue
-- KEYS: Q:jobs, Q:ready:io, Q:ready:cpu
-- ARGV: Q, now, then 7 per job: id, type, kind, payload, max_attempts, timeout_ms, result_ttl_ms
local now = arg_int(ARGV[2], 0, MAX_COUNT)
if not now then return redis.error_reply('ERR kiln enqueue: now must be a time in ms') end
local n = (#ARGV - 2) / 7
if n < 1 or n ~= math.floor(n) then return redis.error_reply('ERR kiln enqueue: expected 7 arguments per job after Q and now') end
local ids, seen, recs = {}, {}, {}
for j = 1, n do
  local b = 2 + (j - 1) * 7
  local id, jtype, kind, payload = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local function refuse(what) return redis.error_reply('ERR kiln enqueue: job ' .. j .. ': ' .. what) end
  if id == '' or #id > 128 then return refuse('id must be 1-128 characters') end
  if seen[id] then return refuse('id repeats job ' .. seen[id]) end
  if jtype == '' or #jtype > 200 then return refuse('type must be 1-200 bytes') end
  if kind ~= 'io' and kind ~= 'cpu' then return refuse('kind must be io or cpu') end
  local max = arg_int(ARGV[b + 5], 1, 1001)
  if not max then return refuse('max_attempts must be 1-1001') end
  local timeout = arg_int(ARGV[b + 6], 1, MAX_MS)
  if not timeout then return refuse('timeout_ms must be 1-' .. MAX_MS) end
  local ttl = arg_int(ARGV[b + 7], 1, MAX_MS)
  if not ttl then return refuse('result_ttl_ms must be 1-' .. MAX_MS) end
  seen[id] = j
  ids[j] = id
  recs[j] = {3, QUEUED, jtype, kind, payload, 0, max, 0, timeout, ttl, now, 0, 0, 0, '', '', '', '', 0, 0}
end
local existing = redis.call('HMGET', KEYS[1], unpack(ids))
local first, count, mine = 0, 0, 0
for j = 1, n do
  if existing[j] then
    count = count + 1
    if first == 0 then first = j end
    local r = load(existing[j])
    if r and r[F_TYPE] == recs[j][F_TYPE] and r[F_PAYLOAD] == recs[j][F_PAYLOAD] and r[F_ENQUEUED] == now then
      mine = mine + 1
    end
  end
end
-- A retry of this very call after a dropped connection finds every job written as it would write it.
if count == n and mine == n then return {0, 0, 1} end
if count > 0 then return {first, count, 0} end
local io_ids, cpu_ids = {}, {}
for j = 1, n do
  put(ids[j], recs[j])
  if recs[j][F_KIND] == 'io' then io_ids[#io_ids + 1] = ids[j] else cpu_ids[#cpu_ids + 1] = ids[j] end
end
redis.call('HSET', KEYS[1], unpack(writes))
if #io_ids > 0 then redis.call('RPUSH', KEYS[2], unpack(io_ids)) end
if #cpu_ids > 0 then redis.call('RPUSH', KEYS[3], unpack(cpu_ids)) end
return {0, 0, 0}
