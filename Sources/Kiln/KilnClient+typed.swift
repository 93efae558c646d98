extension KilnClient {
    /// Enqueues a typed job: its type is `J.name`, its payload the value as JSON, its kind
    /// `J.kind`. Options default to `J.defaultOptions`; a `kind` in `options` is ignored (the
    /// type decides). Returns a handle whose `value()` is the job's `Output`.
    public func enqueue<J: KilnJob>(_ job: J, options: JobOptions? = nil) async throws -> JobHandle<J.Output> {
        let request = try Self.request(for: job, options: options)
        let id = try await enqueueBatch([request])[0]
        return JobHandle(id: id, queue: request.options.queue, client: self, fresh: true)
    }

    /// Enqueues many jobs of one type in one pipeline (all or nothing per 500 jobs of a queue,
    /// as `enqueueBatch`); returns their handles in order.
    public func enqueue<J: KilnJob>(all jobs: [J], options: JobOptions? = nil) async throws -> [JobHandle<J.Output>] {
        let requests = try jobs.map { try Self.request(for: $0, options: options) }
        let ids = try await enqueueBatch(requests)
        return zip(ids, requests).map { JobHandle(id: $0, queue: $1.options.queue, client: self, fresh: true) }
    }

    /// A handle for a typed job enqueued earlier (by id, for example from another process).
    public func handle<J: KilnJob>(_ job: J.Type, id: String, queue: String? = nil) -> JobHandle<J.Output> {
        JobHandle(id: id, queue: queue ?? J.defaultOptions.queue, client: self)
    }

    static func request<J: KilnJob>(for job: J, options: JobOptions?) throws -> EnqueueRequest {
        var options = options ?? J.defaultOptions
        options.kind = J.kind
        let text: String
        do { text = try JSONText.encode(job) } catch {
            throw KilnError(.invalidInput, "job '\(J.name)' could not be encoded as JSON: \(error)")
        }
        return EnqueueRequest(type: J.name, payload: text, options: options)
    }
}
