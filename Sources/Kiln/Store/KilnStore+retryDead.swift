import KilnRedis

/// What `retry_dead` did.
package enum RetryDeadReply: Sendable, Equatable {
    /// Back on its queue, attempts reset.
    case queued
    /// No record (never enqueued, or expired).
    case missing
    /// Its status is not dead, failed or timed_out: nothing changed.
    case notRetryable(String)
}


/// Running a dead-lettered (or failed, or timed out) job again: `retry_dead`.
extension KilnStore {
    /// Puts job `id` of `queue` back on its ready list with its attempts reset, if it ended
    /// dead, failed or timed out. Its record stays in `Q:revived` until it is deleted, so that
    /// the expiry index's old entry for it does not delete it.
    package func retryDead(queue: String, id: String, now: Int64) async throws -> RetryDeadReply {
        let reply = try await run(KilnScripts.retryDead,
                                  keys: [keys.jobs(queue), keys.dead(queue), keys.ready(queue, .io), keys.ready(queue, .cpu), keys.revived(queue)],
                                  args: [keys.queuePrefix(queue), String(now), id])
        switch reply.string ?? "" {
        case "queued": return .queued
        case "missing": return .missing
        case let w where w.hasPrefix("not_retryable:"): return .notRetryable(String(w.dropFirst(14)))
        default: throw unexpected(KilnScripts.retryDead, reply)
        }
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:dead, Q:ready:io, Q:ready:cpu, Q:revived. ARGV: Q, now, id. Returns
    /// `queued`, `missing`, or `not_retryable:STATUS` (`not_retryable:malformed …` for a record
    /// it cannot use).
    package static let retryDead = Script(name: "retry_dead", body: """
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
    """)
}
