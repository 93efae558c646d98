-- get
-- KEYS: Q:jobs
-- ARGV: Q, then ids
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {} end
local raws = redis.call('HMGET', KEYS[1], unpack(ids))
local out = {}
for j = 1, #ids do
  local r = load(raws[j])
  local flat = {}
  if r then
    for k, name in ipairs(FIELDS) do
      local v = r[k]
      if k == F_STATUS then v = NAMES[v] end
      flat[#flat + 1] = name; flat[#flat + 1] = tostring(v)
    end
  elseif r == false then
    flat = {'status', 'failed', 'error_type', 'malformed_envelope', 'error_message', 'record is not a version 3 record'}
  end
  out[j] = flat
end
return out
