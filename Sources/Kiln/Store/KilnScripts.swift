/// The Lua scripts behind every multi-key state change. Each runs atomically in Redis, so a job is
/// never half-written and never in two states. `version` goes into the script text (and so its
/// SHA): a worker and a producer of different versions never run each other's scripts by accident.
///
/// This file holds the shared prelude; each script's text sits beside the `KilnStore` method that
/// runs it (`KilnStore+fetch.swift` and so on). Only the store runs them.
///
/// Conventions: `P` (ARGV[1] of most scripts) is the queue's key prefix `prefix:{queue}:`; the job
/// hash is `P..'job:'..id` and its done list `P..'done:'..id`. Times are Unix milliseconds.
public enum KilnScripts {
    public static let version = 2

    /// Shared helpers prepended to every script: the version line, the checks of
    /// `KilnScripts+validation.swift`, then these.
    static let prelude = "-- kiln scripts v\(version)\n" + validation + """
    -- Redis's own clock in ms. A lease runs from the later of the worker's `now` and this: a
    -- request that waited in a worker's connection while the link was down (it can arrive seconds
    -- late) must not lease a job until a moment already past, or another worker's reaper takes it
    -- back at once while it runs here (a second run while the first is alive).
    local function redis_ms()
      local t = redis.call('TIME')
      return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    -- Marks a job final: one HSET, its TTL, and its done list (RPUSH + TTL) for waiters.
    -- `ttl` is the job's result_ttl_ms if the caller already read it (saves an HGET).
    local function finalize(P, id, status, now, etype, emsg, ttl, result)
      local jk = P .. 'job:' .. id
      if etype then
        redis.call('HSET', jk, 'status', status, 'finished_at', now, 'error_type', etype, 'error_message', emsg)
      elseif result then
        redis.call('HSET', jk, 'status', status, 'finished_at', now, 'result', result)
      else
        redis.call('HSET', jk, 'status', status, 'finished_at', now)
      end
      -- TTLs stay strings: turning a Lua number back into text costs more than the command.
      -- Callers validate result_ttl_ms before they write; anything else left here (missing, or
      -- a record changed behind their back) gets the default, so PEXPIRE can never fail.
      if type(ttl) ~= 'string' then ttl = ttl and tostring(ttl) or redis.call('HGET', jk, 'result_ttl_ms') end
      if not valid_ttl[ttl] and not whole(ttl, 1, MAX_MS) then ttl = '86400000' end
      redis.call('PEXPIRE', jk, ttl)
      local dk = P .. 'done:' .. id
      redis.call('RPUSH', dk, status)
      redis.call('PEXPIRE', dk, ttl)
      -- One wake-up for every waiter of this queue that multiplexes (KilnClient.waitAll). pcall:
      -- a user whose ACL predates the channel must not fail the script after its writes.
      redis.pcall('PUBLISH', P .. 'done', id)
    end
    local function final_failure(P, id, now, etype, emsg, dead_key, max, ttl)
      -- A job that had retries and used them all (or cannot use them) is dead-lettered.
      max = tonumber(max) or tonumber(redis.call('HGET', P .. 'job:' .. id, 'max_attempts')) or 1
      local status = etype == 'timeout' and 'timed_out' or 'failed'
      if max > 1 then
        status = 'dead'
        redis.call('ZADD', dead_key, now, id)
      end
      finalize(P, id, status, now, etype, emsg, ttl)
      return status
    end
    -- The fenced end of one attempt (the body of `finish` and of each entry of `finish_many`).
    -- Everything but removing the lease, which the caller does (batched). Returns the status the
    -- job is left in, or 'stale' (nothing changed) unless the job is running under `token`.
    -- Whether a record no longer running under `token` was left so by an earlier try of this very
    -- call (same attempt, same `now`: every try of one call sends the same arguments) whose reply
    -- was lost with the connection. Returns the status that try left, or nil. Another writer (a
    -- reaper) would have to end the same attempt in the same millisecond with the same error.
    local function applied_before(jk, status, outcome, etype, now, delay)
      local g = redis.call('HMGET', jk, 'finished_at', 'retry_at', 'error_type')
      if status == 'retrying' then
        local d = tonumber(delay) or -1
        if outcome ~= 'succeeded' and d >= 0 and tonumber(g[2]) == tonumber(now) + d and g[3] == etype then return status end
        return nil
      end
      if not g[1] or tonumber(g[1]) ~= tonumber(now) then return nil end
      if g[3] == 'malformed_envelope' and status == 'failed' then return status end
      if status == 'succeeded' then return outcome == 'succeeded' and status or nil end
      if outcome == 'succeeded' then return nil end
      if (status == 'failed' or status == 'timed_out' or status == 'dead' or status == 'cancelled')
        and (g[3] == etype or (status == 'cancelled' and g[3] == 'cancelled')) then return status end
      return nil
    end
    local function finish_one(P, id, token, outcome, result, etype, emsg, now, delay, sched_key, dead_key)
      local jk = P .. 'job:' .. id
      local f = redis.call('HMGET', jk, 'token', 'status', 'cancel_requested', 'attempts', 'max_attempts', 'result_ttl_ms')
      if f[1] ~= token or f[2] ~= 'running' then
        return (f[1] == token and f[2] and applied_before(jk, f[2], outcome, etype, now, delay)) or 'stale'
      end
      -- Changed behind the worker's back since fetch checked it: end it, never half-write it.
      local problem = bad_numbers(f[4], f[5], nil, f[6])
      if problem then
        finalize(P, id, 'failed', now, 'malformed_envelope', problem, '86400000')
        return 'failed'
      end
      if outcome == 'succeeded' then
        -- An earlier attempt (or a reclaim) may have left an error behind.
        if f[4] and f[4] ~= '1' then redis.call('HDEL', jk, 'error_type', 'error_message', 'retry_at') end
        finalize(P, id, 'succeeded', now, nil, nil, f[6], result)
        return 'succeeded'
      end
      if f[3] == '1' then
        finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled while running', f[6])
        return 'cancelled'
      end
      if outcome == 'cancelled' then
        finalize(P, id, 'cancelled', now, etype, emsg, f[6])
        return 'cancelled'
      end
      delay = tonumber(delay) or -1
      now = tonumber(now)
      if delay >= 0 and (tonumber(f[4]) or 1) < (tonumber(f[5]) or 1) then
        redis.call('HSET', jk, 'status', 'retrying', 'retry_at', now + delay, 'error_type', etype, 'error_message', emsg)
        redis.call('ZADD', sched_key, now + delay, id)
        return 'retrying'
      end
      return final_failure(P, id, now, etype, emsg, dead_key, f[5] or 1, f[6])
    end
    -- ZADD/ZREM/LPUSH with many members, in chunks (Lua's unpack has a stack limit).
    local function multi(cmd, key, items)
      for i = 1, #items, 4000 do
        redis.call(cmd, key, unpack(items, i, math.min(i + 3999, #items)))
      end
    end

    """

    public static let all: [Script] = [enqueue, enqueueMany, fetch, finish, finishMany, cancel, extend, reap, sweep, retryDead, release]

    /// One script: its name (for errors) and full text including the prelude.
    public struct Script: Sendable, Hashable {
        public let name: String
        public let source: String
        init(name: String, body: String) {
            self.name = name
            self.source = KilnScripts.prelude + "-- \(name)\n" + body
        }
    }
}
