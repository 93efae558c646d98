import KilnRedis

extension KilnClient {
    /// Dead-lettered jobs, oldest first, of one queue or all queues.
    public func deadJobs(queue: String? = nil, limit: Int = 1000) async throws -> [JobRecord] {
        try await withRetry {
            let queues: [String]
            if let queue {
                try KeySchema.checkQueueName(queue)
                queues = [queue]
            } else {
                queues = try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
            }
            var out: [JobRecord] = []
            for q in queues {
                let ids = try await connection.send(["ZRANGE", keys.dead(q), "0", String(max(0, limit - 1))]).array.compactMap(\.string)
                let hashes = try await connection.pipeline(ids.map { ["HGETALL", keys.job(q, $0)] })
                    .checked(command: "HGETALL", address: options.redis.address)
                out += hashes.compactMap { JobRecord(hash: $0, queue: q) }
            }
            return out
        }
    }

    /// Runs a job that ended dead, failed or timed_out again from scratch (attempts reset, record
    /// kept under the same id). Throws `.noSuchJob`, or `.invalidInput` for other statuses.
    public func retry(_ id: String, queue: String? = nil) async throws {
        let (q, _) = try await locate(id, queue: queue)
        let reply: RedisValue
        do {
            reply = try await scripts.run(KilnScripts.retryDead, keys: [keys.dead(q), keys.pending(q, .io), keys.pending(q, .cpu)],
                                          args: [keys.queuePrefix(q), id, String(Self.nowMs())])
        } catch { throw KilnError.wrap(error) }
        switch reply.string ?? "" {
        case "queued": return
        case "missing": throw KilnError(.noSuchJob, "no job with id \(id) (its record expired)")
        case let other:
            let status = other.split(separator: ":").last.map(String.init) ?? other
            throw KilnError(.invalidInput, "job \(id) is \(status): only dead, failed or timed_out jobs can be retried")
        }
    }
}
