import KilnRedis

extension KilnClient {
    /// Whether the jobs at `positions` (one `enqueue` call, all of whose ids now exist) were
    /// written by an earlier try of this same call whose reply was lost with the connection.
    ///
    /// A fresh id (a ULID made for this call) that exists can only be ours, and the call is all or
    /// nothing, so one such id settles it. A call made only of caller-chosen ids is ours if every
    /// record has this call's type, payload and `enqueued_at` (the millisecond `now` that every try
    /// of the call sends): another producer reusing an id would have to enqueue the same job in the
    /// same millisecond. Without this check a retried enqueue with `id:` reported `.duplicateJob`
    /// for the job it had just written.
    func writtenByEarlierTry(_ positions: ArraySlice<Int>, of requests: [EnqueueRequest], jobs: [NewJob],
                             queue: String, now: Int64) async throws -> Bool {
        if positions.contains(where: { requests[$0].options.id == nil }) { return true }
        do {
            return try await store.jobsMatch(queue: queue, jobs, enqueuedAt: now)
        } catch { throw KilnError.wrap(error) }
    }
}
