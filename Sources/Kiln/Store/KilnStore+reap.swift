import KilnRedis

/// What one `reap` call did.
public struct ReapReport: Sendable, Equatable {
    /// Expired leases of running jobs taken back (requeued or finalized).
    public var reclaimed: Int
    /// Due retries moved back to their queue.
    public var promoted: Int
    /// When the next retry is due (ms), if any is scheduled.
    public var nextDueMs: Int64?
    /// Dead-lettered jobs deleted by the caps.
    public var deadTrimmed: Int
    /// Finished jobs whose results expired and were deleted (protocol v3's expiry index; always 0
    /// in protocol v2, where each record expires with its own TTL).
    public var expired: Int = 0
}

/// Housekeeping: `reap` (expired leases, due retries, dead-letter caps) and `sweep` (jobs marked
/// running without a lease).
extension KilnStore {
    /// One `reap` of `queue` at `now`, handling up to `limit` of each kind of entry. With
    /// `reclaim` false, expired leases are left alone (after an outage).
    public func reap(queue: String, now: Int64, limit: Int = 500, reclaim: Bool, deadMax: Int, deadMaxAge: Duration) async throws -> ReapReport {
        let r = try await run(
            KilnScripts.reap,
            keys: [keys.running(queue), keys.scheduled(queue), keys.pending(queue, .io), keys.pending(queue, .cpu), keys.dead(queue)],
            args: [keys.queuePrefix(queue), String(now), String(limit), reclaim ? "1" : "0", String(deadMax),
                   String(KilnDuration.milliseconds(deadMaxAge))]).array
        let n = r.map { $0.int ?? 0 }
        let next = n.count > 2 && n[2] > 0 ? Int64(n[2]) : nil
        return ReapReport(reclaimed: n.first ?? 0, promoted: n.count > 1 ? n[1] : 0, nextDueMs: next, deadTrimmed: n.count > 3 ? n[3] : 0)
    }

    /// Gives a lease until `deadline` to each of `ids` that is marked running but has none.
    /// Returns how many it found.
    public func sweep(queue: String, ids: [String], deadline: Int64) async throws -> Int {
        if ids.isEmpty { return 0 }
        return try await run(KilnScripts.sweep, keys: [keys.running(queue)], args: [keys.queuePrefix(queue), String(deadline)] + ids).int ?? 0
    }

    /// Sweeps every job record of `queue` (a `SCAN` of the keyspace, page by page). Returns how
    /// many jobs marked running had no lease.
    public func sweepAll(queue: String, deadline: Int64) async throws -> Int {
        let prefix = keys.queuePrefix(queue) + "job:"
        let pattern = Self.globEscaped(keys.queuePrefix(queue)) + "job:*"
        var cursor = "0"
        var found = 0
        repeat {
            let page = try await connection.send(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]).array
            cursor = page.first?.string ?? "0"
            let ids = (page.count > 1 ? page[1].array : []).compactMap { $0.string }.map { String($0.dropFirst(prefix.count)) }
            found += try await sweep(queue: queue, ids: ids, deadline: deadline)
        } while cursor != "0"
        return found
    }

    /// `text` with SCAN's glob characters escaped (prefixes and queue names may contain them).
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for c in text {
            if "*?[]\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

extension KilnScripts {
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
}
