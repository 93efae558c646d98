/// The Lua scripts behind every multi-key state change. Each runs atomically in Redis, so a job is
/// never half-written and never in two states. `version` goes into the script text (and so its
/// SHA): a worker and a producer of different versions never run each other's scripts by accident.
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
    local function finish_one(P, id, token, outcome, result, etype, emsg, now, delay, sched_key, dead_key)
      local jk = P .. 'job:' .. id
      local f = redis.call('HMGET', jk, 'token', 'status', 'cancel_requested', 'attempts', 'max_attempts', 'result_ttl_ms')
      if f[1] ~= token or f[2] ~= 'running' then return 'stale' end
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

    /// KEYS: job hash, pending list of its kind. ARGV: id, type, queue, kind, payload,
    /// max_attempts, timeout_ms, result_ttl_ms, now. Returns 1, or 0 if the id already exists.
    public static let enqueue = Script(name: "enqueue", body: """
    local problem = bad_enqueue(ARGV[2], ARGV[4], ARGV[6], ARGV[7], ARGV[8])
    if problem then return redis.error_reply('ERR kiln enqueue: ' .. problem) end
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'queue', ARGV[3], 'kind', ARGV[4],
      'payload', ARGV[5], 'status', 'queued', 'attempts', 0, 'max_attempts', ARGV[6],
      'timeout_ms', ARGV[7], 'result_ttl_ms', ARGV[8], 'enqueued_at', ARGV[9], 'token', 0)
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 1
    """)

    /// KEYS: pending list, running zset. ARGV: P, now, count, worker, lease_ms, lease_margin_ms.
    /// Pops up to `count` ids and leases each runnable one to the worker, for `lease_ms` or, if
    /// shorter, the job's timeout plus `lease_margin_ms` (a job ends by its timeout, so a short job
    /// whose worker dies comes back soon; the heartbeat extends long jobs' leases). Returns a flat array of
    /// 9 fields per job: id, token, attempts, type, payload, kind, max_attempts, timeout_ms, queue.
    /// Ids without a record, or whose record is not `queued`, are skipped (never run twice);
    /// a job cancelled while queued is finalized instead.
    public static let fetch = Script(name: "fetch", body: """
    local P, now, count, worker, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
    local margin, now_text = tonumber(ARGV[6]), ARGV[2]
    local lease_from = math.max(now, redis_ms())
    local out, leases = {}, {}
    -- Lease deadlines as text, made once per distinct timeout (number to text is slow in Lua).
    local deadline_text = {}
    local n = 0
    while n < count do
      local want = count - n
      local ids = redis.call('RPOP', KEYS[1], want)
      if not ids then break end
      for _, id in ipairs(ids) do
        local jk = P .. 'job:' .. id
        local f = redis.call('HMGET', jk, 'status', 'cancel_requested', 'type', 'payload', 'kind', 'max_attempts', 'timeout_ms', 'queue', 'attempts', 'token', 'result_ttl_ms')
        local st = f[1]
        if not st and not f[3] and not f[4] and not f[7] and redis.call('EXISTS', jk) == 0 then
          redis.call('HSET', jk, 'id', id, 'result_ttl_ms', 86400000)
          finalize(P, id, 'failed', now_text, 'malformed_envelope', 'the id ' .. id .. ' was on the queue but has no job record', '86400000')
        elseif f[2] == '1' and (st == 'queued' or not st) then
          finalize(P, id, 'cancelled', now_text, 'cancelled', 'cancelled before it ran', f[11])
        elseif (st == 'queued' or not st) and bad_numbers(f[9], f[6], f[7], f[11], f[10]) then
          -- Never leased: it could not be finished without a failing write later.
          finalize(P, id, 'failed', now_text, 'malformed_envelope', bad_numbers(f[9], f[6], f[7], f[11], f[10]), '86400000')
        elseif st == 'queued' or not st then
          local attempts = tostring((tonumber(f[9]) or 0) + 1)
          local token = tostring((tonumber(f[10]) or 0) + 1)
          redis.call('HSET', jk, 'status', 'running', 'started_at', now_text, 'worker', worker, 'attempts', attempts, 'token', token)
          local dl = deadline_text[f[7] or '']
          if not dl then
            local job_lease = lease
            local timeout = tonumber(f[7])
            if margin and timeout and timeout + margin < job_lease then job_lease = timeout + margin end
            dl = string.format('%d', lease_from + job_lease)
            deadline_text[f[7] or ''] = dl
          end
          leases[#leases + 1] = dl
          leases[#leases + 1] = id
          n = n + 1
          out[#out + 1] = id
          out[#out + 1] = token
          out[#out + 1] = attempts
          out[#out + 1] = f[3] or ''
          out[#out + 1] = f[4] or ''
          out[#out + 1] = f[5] or ''
          out[#out + 1] = f[6] or ''
          out[#out + 1] = f[7] or ''
          out[#out + 1] = f[8] or ''
        end
      end
      if #ids < want then break end  -- the list is empty now
    end
    multi('ZADD', KEYS[2], leases)
    return out
    """)

    /// KEYS: running, scheduled, dead. ARGV: P, id, token, outcome (succeeded|failed|timed_out|cancelled),
    /// result_json, error_type, error_message, now, retry_delay_ms (-1: do not retry).
    /// Fenced: does nothing and returns 'stale' unless the job is running under this token.
    /// Returns the status the job is left in.
    public static let finish = Script(name: "finish", body: """
    local status = finish_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], KEYS[2], KEYS[3])
    if status ~= 'stale' then redis.call('ZREM', KEYS[1], ARGV[2]) end
    return status
    """)



    /// KEYS: pending:io, pending:cpu, scheduled. ARGV: P, id, now, cancel channel.
    /// Returns 'cancelled' (it was queued or waiting to retry: removed, will never run),
    /// 'running' (cancel recorded and published; the worker stops it), 'missing', or
    /// 'finished:STATUS' when it had already finished (nothing changes).
    public static let cancel = Script(name: "cancel", body: """
    local P, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
    local jk = P .. 'job:' .. id
    if redis.call('EXISTS', jk) == 0 then return 'missing' end
    local st = redis.call('HGET', jk, 'status')
    if st == 'queued' or st == 'retrying' or not st then
      redis.call('LREM', KEYS[1], 0, id)
      redis.call('LREM', KEYS[2], 0, id)
      redis.call('ZREM', KEYS[3], id)
      finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled before it ran')
      return 'cancelled'
    end
    if st == 'running' then
      redis.call('HSET', jk, 'cancel_requested', 1)
      redis.call('PUBLISH', ARGV[4], P .. ' ' .. id)
      return 'running'
    end
    return 'finished:' .. st
    """)

    /// KEYS: running. ARGV: P, new lease deadline, lease_ms, then id, token pairs.
    /// Extends the lease of every job still running under its token, to the later of the given
    /// deadline and Redis's clock + lease_ms (a renewal that arrives late still renews for a whole
    /// lease, rather than to a moment already past). Returns a flat array of
    /// id, reason pairs for jobs the worker must stop: 'cancel' (cancel requested) or 'lost'
    /// (the lease was lost and the job belongs to someone else now).
    public static let extend = Script(name: "extend", body: """
    local P, deadline = ARGV[1], tonumber(ARGV[2])
    local lease = tonumber(ARGV[3])
    if lease then deadline = math.max(deadline, redis_ms() + lease) end
    deadline = string.format('%d', deadline)
    local out = {}
    for i = 4, #ARGV, 2 do
      local id, token = ARGV[i], ARGV[i + 1]
      local f = redis.call('HMGET', P .. 'job:' .. id, 'token', 'status', 'cancel_requested')
      if f[1] ~= token or f[2] ~= 'running' then
        out[#out + 1] = id
        out[#out + 1] = 'lost'
      else
        redis.call('ZADD', KEYS[1], deadline, id)
        if f[3] == '1' then
          out[#out + 1] = id
          out[#out + 1] = 'cancel'
        end
      end
    end
    return out
    """)

    /// KEYS: running, scheduled, pending:io, pending:cpu, dead. ARGV: P, now, limit, reclaim (0 = no),
    /// dead_max (count), dead_max_age_ms.
    /// If `reclaim` is 1, puts jobs whose lease expired back at the front of their queue (or
    /// finalizes them if cancelled or out of attempts). Always moves due retries to their queue and
    /// trims the dead-letter set: entries whose record expired, the oldest past `dead_max`, and
    /// those older than `dead_max_age_ms` (their records are deleted too).
    /// Returns {reclaimed, promoted, next due time or -1, dead trimmed}.
    public static let reap = Script(name: "reap", body: """
    local P, now, limit, reclaim = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] ~= '0'
    local dead_max, dead_age = tonumber(ARGV[5]) or 10000, tonumber(ARGV[6]) or 604800000
    local reclaimed, promoted, trimmed = 0, 0, 0
    local expired = {}
    if reclaim then expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit) end
    for _, id in ipairs(expired) do
      redis.call('ZREM', KEYS[1], id)
      local jk = P .. 'job:' .. id
      local f = redis.call('HMGET', jk, 'status', 'cancel_requested', 'attempts', 'max_attempts', 'kind', 'result_ttl_ms')
      if f[1] == 'running' then
        reclaimed = reclaimed + 1
        local msg = 'the worker running attempt ' .. (f[3] or '?') .. ' stopped renewing its lease (it crashed, was killed or lost Redis)'
        local problem = bad_numbers(f[3], f[4], nil, f[6])
        if problem then
          finalize(P, id, 'failed', now, 'malformed_envelope', problem, '86400000')
        elseif f[2] == '1' then
          finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled; ' .. msg)
        elseif (tonumber(f[3]) or 0) >= (tonumber(f[4]) or 1) then
          final_failure(P, id, now, 'worker_lost', msg, KEYS[5])
        else
          redis.call('HSET', jk, 'status', 'queued', 'error_type', 'worker_lost', 'error_message', msg)
          redis.call('RPUSH', f[5] == 'cpu' and KEYS[4] or KEYS[3], id)
        end
      end
    end
    local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
    for _, id in ipairs(due) do
      redis.call('ZREM', KEYS[2], id)
      local jk = P .. 'job:' .. id
      local f = redis.call('HMGET', jk, 'status', 'kind')
      if f[1] == 'retrying' then
        promoted = promoted + 1
        redis.call('HSET', jk, 'status', 'queued')
        redis.call('LPUSH', f[2] == 'cpu' and KEYS[4] or KEYS[3], id)
      end
    end
    local function drop_dead(id)
      redis.call('ZREM', KEYS[5], id)
      redis.call('DEL', P .. 'job:' .. id, P .. 'done:' .. id)
      trimmed = trimmed + 1
    end
    for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, 49)) do
      if redis.call('EXISTS', P .. 'job:' .. id) == 0 then redis.call('ZREM', KEYS[5], id) end
    end
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - dead_age, 'LIMIT', 0, limit)) do drop_dead(id) end
    local over = redis.call('ZCARD', KEYS[5]) - dead_max
    if over > 0 then
      for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, math.min(over, limit) - 1)) do drop_dead(id) end
    end
    local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    local next_due = -1
    if nxt[2] then next_due = tonumber(nxt[2]) end
    return {reclaimed, promoted, next_due, trimmed}
    """)

    /// KEYS: running. ARGV: P, deadline, then ids.
    /// Gives a lease (until `deadline`) to each listed job that is marked running but has none, so
    /// the reaper can reclaim it if no worker renews it. Returns how many it found.
    public static let sweep = Script(name: "sweep", body: """
    local P, deadline = ARGV[1], tonumber(ARGV[2])
    local found = 0
    for i = 3, #ARGV do
      local id = ARGV[i]
      if redis.call('HGET', P .. 'job:' .. id, 'status') == 'running' and not redis.call('ZSCORE', KEYS[1], id) then
        redis.call('ZADD', KEYS[1], deadline, id)
        found = found + 1
      end
    end
    return found
    """)

    /// KEYS: dead, pending:io, pending:cpu. ARGV: P, id, now.
    /// Runs a job that ended dead, failed or timed_out again from scratch (attempts reset).
    /// Returns 'queued', 'missing', or 'not_retryable:STATUS'.
    public static let retryDead = Script(name: "retry_dead", body: """
    local P, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
    local jk = P .. 'job:' .. id
    if redis.call('EXISTS', jk) == 0 then return 'missing' end
    local f = redis.call('HMGET', jk, 'status', 'kind')
    if f[1] ~= 'dead' and f[1] ~= 'failed' and f[1] ~= 'timed_out' then return 'not_retryable:' .. (f[1] or '?') end
    redis.call('ZREM', KEYS[1], id)
    redis.call('PERSIST', jk)
    redis.call('DEL', P .. 'done:' .. id)
    redis.call('HDEL', jk, 'finished_at', 'started_at', 'worker', 'retry_at', 'cancel_requested', 'result')
    redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'retried_at', now)
    redis.call('LPUSH', f[2] == 'cpu' and KEYS[3] or KEYS[2], id)
    return 'queued'
    """)

    /// KEYS: running, pending list to put it on. ARGV: P, id, token, kind, now.
    /// Hands a leased job back without counting the attempt: on graceful shutdown, or to move a
    /// job to the kind of slot its handler needs. Returns 'released', 'cancelled' or 'stale'.
    public static let release = Script(name: "release", body: """
    local P, id, token, kind, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
    local jk = P .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'token', 'status', 'cancel_requested', 'attempts', 'max_attempts', 'result_ttl_ms')
    if f[1] ~= token or f[2] ~= 'running' then return 'stale' end
    local problem = bad_numbers(f[4], f[5], nil, f[6])
    redis.call('ZREM', KEYS[1], id)
    if problem then
      finalize(P, id, 'failed', now, 'malformed_envelope', problem, '86400000')
      return 'failed'
    end
    if f[3] == '1' then
      finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled while running', f[6])
      return 'cancelled'
    end
    local attempts = (tonumber(f[4]) or 1) - 1
    redis.call('HSET', jk, 'status', 'queued', 'kind', kind, 'attempts', attempts < 0 and 0 or attempts)
    redis.call('HDEL', jk, 'started_at', 'worker')
    redis.call('RPUSH', KEYS[2], id)
    return 'released'
    """)

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
