import KilnRedis

extension KilnClient {
    /// Dead-lettered jobs, oldest first, of one queue or all queues.
    public func deadJobs(queue: String? = nil, limit: Int = 1000) async throws -> [JobRecord] {
        if let queue { try KeySchema.checkQueueName(queue) }
        return try await withRetry {
            try await store.checkVersion(mark: false)
            var out: [JobRecord] = []
            let queues = if let queue { [queue] } else { try await store.queueNames() }
            for q in queues {
                out += try await store.deadJobs(queue: q, limit: limit)
            }
            return out
        }
    }

    /// Runs a job that ended dead, failed or timed_out again from scratch (attempts reset, record
    /// kept under the same id). Throws `.noSuchJob`, or `.invalidInput` for other statuses.
    public func retry(_ id: String, queue: String? = nil) async throws {
        let (q, _) = try await locate(id, queue: queue)
        let reply: RetryDeadReply
        do {
            reply = try await store.retryDead(queue: q, id: id, now: KilnClock.nowMs())
        } catch { throw KilnError.wrap(error) }
        switch reply {
        case .queued: return
        case .missing: throw KilnError(.noSuchJob, "no job with id \(id) (its record expired)")
        case .notRetryable(let status):
            throw KilnError(.invalidInput, "job \(id) is \(status): only dead, failed or timed_out jobs can be retried")
        }
    }
}
