import KilnRedis

/// What `retry_dead` did.
public enum RetryDeadReply: Sendable, Equatable {
    /// Back on its queue, attempts reset.
    case queued
    /// No record (never enqueued, or expired).
    case missing
    /// Its status is not dead, failed or timed_out: nothing changed.
    case notRetryable(String)
}

/// Running a dead-lettered (or failed, or timed out) job again: `retry_dead`.
extension KilnStore {
    public func retryDead(queue: String, id: String, now: Int64) async throws -> RetryDeadReply {
        let reply = try await run(KilnScripts.retryDead, keys: [keys.dead(queue), keys.pending(queue, .io), keys.pending(queue, .cpu)],
                                  args: [keys.queuePrefix(queue), id, String(now)])
        switch reply.string ?? "" {
        case "queued": return .queued
        case "missing": return .missing
        case let other: return .notRetryable(other.split(separator: ":").last.map(String.init) ?? other)
        }
    }
}

extension KilnScripts {
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
}
