import KilnRedis

extension KilnClient {
    /// Whether the jobs at `positions` (one `enqueue_many` call, all of whose ids now exist) were
    /// written by an earlier try of this same call whose reply was lost with the connection.
    ///
    /// A fresh id (a ULID made for this call) that exists can only be ours, and the call is all or
    /// nothing, so one such id settles it. A call made only of caller-chosen ids is ours if every
    /// record has this call's type, payload and `enqueued_at` (the millisecond `now` that every try
    /// of the call sends): another producer reusing an id would have to enqueue the same job in the
    /// same millisecond. Without this check a retried enqueue with `id:` reported `.duplicateJob`
    /// for the job it had just written.
    func writtenByEarlierTry(_ positions: ArraySlice<Int>, of requests: [EnqueueRequest], ids: [String],
                             queue: String, now: String) async throws -> Bool {
        if positions.contains(where: { requests[$0].options.id == nil }) { return true }
        let replies: [RedisValue]
        do {
            replies = try await connection.pipeline(positions.map { ["HMGET", keys.job(queue, ids[$0]), "type", "payload", "enqueued_at"] })
        } catch { throw KilnError.wrap(error) }
        for (i, reply) in zip(positions, replies) {
            let f = reply.array.map(\.string)
            guard f.count == 3, f[0] == requests[i].type, f[1] == requests[i].payload, f[2] == now else { return false }
        }
        return true
    }
}
