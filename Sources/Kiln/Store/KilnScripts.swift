/// The Lua scripts of protocol v3 (`docs/protocol.md`, "Scripts"). Each runs atomically in
/// Redis and touches the keys of one queue (one hash slot) only. This file holds the shared
/// prelude (record layout, `load`/`put`/`finalize`/`commit`, range checks); each script's text
/// sits beside the `KilnStore` method that runs it (`KilnStore+fetch.swift` and so on).
///
/// Conventions: `Q` (`ARGV[1]` of every script) is the queue's key prefix `prefix:{queue}:`;
/// times are Unix milliseconds. A record is a MessagePack array, `format` = 3 at position 1.
package enum KilnScripts {
    package static let version = 3

    /// Every v3 script, for tools that preload them.
    package static let all: [Script] = [enqueue, fetch, finish, extend, release, cancel, reap, sweep, retryDead, get]

    /// One script: its name (for errors) and full text including the prelude.
    package struct Script: StoreScript, Hashable {
        package let name: String
        package let source: String
        init(name: String, body: String) {
            self.name = name
            self.source = KilnScripts.prelude + "\n" + body
        }
    }

    /// Shared by every script; line one names the protocol version (and so changes every SHA).
    static let prelude = """
    -- kiln scripts v3
    -- Shared by every script. Record layout: docs/protocol.md, "The record".
    local QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, DEAD = 1, 2, 3, 4, 5, 6, 7, 8
    local NAMES = {'queued', 'running', 'retrying', 'succeeded', 'failed', 'timed_out', 'cancelled', 'dead'}
    local CODES = {queued = 1, running = 2, retrying = 3, succeeded = 4, failed = 5, timed_out = 6, cancelled = 7, dead = 8}
    local F_STATUS, F_TYPE, F_KIND, F_PAYLOAD, F_ATTEMPTS, F_MAX, F_TOKEN, F_TIMEOUT, F_TTL, F_ENQUEUED = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
    local F_STARTED, F_FINISHED, F_RETRY_AT, F_WORKER, F_RESULT, F_ERROR_TYPE, F_ERROR_MESSAGE, F_FLAGS, F_RETRIED = 12, 13, 14, 15, 16, 17, 18, 19, 20
    -- Optional: present only in records whose producer stored a trace context.
    local F_TRACEPARENT = 21
    local FIELDS = {'format', 'status', 'type', 'kind', 'payload', 'attempts', 'max_attempts', 'token', 'timeout_ms',
      'result_ttl_ms', 'enqueued_at', 'started_at', 'finished_at', 'retry_at', 'worker', 'result', 'error_type',
      'error_message', 'flags', 'retried_at'}
    local DEFAULT_TTL = 86400000
    local MAX_MS = 315360000000
    local MAX_COUNT = 9999999999999
    local CANCEL_FLAG = 1

    local function int_in(x, lo, hi)
      return type(x) == 'number' and x == math.floor(x) and x >= lo and x <= hi
    end

    -- A decimal integer argument in canonical form (no '+', no leading zeros, at most 16 characters).
    local function arg_int(s, lo, hi)
      if type(s) ~= 'string' or #s > 16 or not (s == '0' or string.find(s, '^%-?[1-9]%d*$')) then return nil end
      local n = tonumber(s)
      if n < lo or n > hi then return nil end
      return n
    end

    -- nil: no such field; false: a field that is not a version 3 record; else the record array.
    local function load(raw)
      if not raw then return nil end
      local ok, r = pcall(cmsgpack.unpack, raw)
      if not ok or type(r) ~= 'table' or r[1] ~= 3 or not int_in(r[F_STATUS], 1, 8) then return false end
      return r
    end

    -- The first field a script cannot use, or nil.
    local function bad_field(r)
      if type(r[F_TYPE]) ~= 'string' or r[F_TYPE] == '' then return 'type' end
      if r[F_KIND] ~= 'io' and r[F_KIND] ~= 'cpu' then return 'kind' end
      if type(r[F_PAYLOAD]) ~= 'string' then return 'payload' end
      if not int_in(r[F_ATTEMPTS], 0, MAX_COUNT) then return 'attempts' end
      if not int_in(r[F_MAX], 1, 1001) then return 'max_attempts' end
      if not int_in(r[F_TOKEN], 0, MAX_COUNT) then return 'token' end
      if not int_in(r[F_TIMEOUT], 1, MAX_MS) then return 'timeout_ms' end
      if not int_in(r[F_TTL], 1, MAX_MS) then return 'result_ttl_ms' end
      return nil
    end

    -- Refuses a call before its first write: a bad argument, or an id named twice (every script reads
    -- all records before writing, so a repeated id would be written from a stale read).
    local function refuse(script, what) return redis.error_reply('ERR kiln ' .. script .. ': ' .. what) end
    local function repeated(ids)
      local seen = {}
      for _, id in ipairs(ids) do
        if seen[id] then return id end
        seen[id] = true
      end
      return nil
    end

    local function has_flag(r, flag)
      return int_in(r[F_FLAGS], 0, MAX_COUNT) and math.floor(r[F_FLAGS] / flag) % 2 == 1
    end

    -- A record for a field that could not be read: final, failed, with the default TTL.
    local function broken(now, message)
      return {3, FAILED, '', 'io', 'null', 0, 1, 0, 1, DEFAULT_TTL, now, 0, now, 0, '', '', 'malformed_envelope', message, 0, 0}
    end

    -- Jobs made final by this call: their ids and the second their results expire.
    local final_ids, final_expiry = {}, {}
    local writes = {}

    local function put(id, r)
      writes[#writes + 1] = id
      writes[#writes + 1] = cmsgpack.pack(r)
    end

    local function finalize(id, r, status, now, error_type, error_message)
      r[F_STATUS] = status
      r[F_FINISHED] = now
      if error_type then r[F_ERROR_TYPE] = error_type; r[F_ERROR_MESSAGE] = error_message or '' end
      local ttl = r[F_TTL]
      if not int_in(ttl, 1, MAX_MS) then ttl = DEFAULT_TTL end
      final_ids[#final_ids + 1] = id
      final_expiry[#final_ids] = math.ceil((now + ttl) / 1000) * 1000
    end

    local function malformed(id, r, now, field)
      finalize(id, r, FAILED, now, 'malformed_envelope', 'record field ' .. field .. ' is missing or out of range')
    end

    -- Writes the changed records, indexes the final ones for expiry and announces them on Q..'done'.
    local function commit(jobs_key, expiry_key, q)
      for i = 1, #writes, 7000 do
        redis.call('HSET', jobs_key, unpack(writes, i, math.min(i + 6999, #writes)))
      end
      if #final_ids == 0 then return end
      local groups, order = {}, {}
      for i, id in ipairs(final_ids) do
        local e = final_expiry[i]
        if not groups[e] then groups[e] = {}; order[#order + 1] = e end
        local g = groups[e]; g[#g + 1] = id
      end
      local z = {}
      for _, e in ipairs(order) do z[#z + 1] = e; z[#z + 1] = table.concat(groups[e], ' ') end
      redis.call('ZADD', expiry_key, unpack(z))
      redis.call('PUBLISH', q .. 'done', table.concat(final_ids, ' '))
    end

    local function redis_now()
      local t = redis.call('TIME')
      return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    """
}
