extension JobRegistry {
    /// Binds an ``IOJob`` type to its own `run`.
    public mutating func register<J: IOJob>(_ job: J.Type) {
        register(J.self) { job, context in try await job.run(context: context) }
    }

    /// Binds a ``CPUJob`` type to its own `run`; it runs in the worker's process pool.
    public mutating func register<J: CPUJob>(_ job: J.Type) {
        handlers[J.name] = .cpu { text, context in
            let job = try Self.decodePayload(J.self, text, type: J.name)
            return try JSONText.encode(try job.run(context: context))
        }
    }

    /// Binds a job type to an async handler, for a handler that needs more than the job value
    /// (a database pool, an HTTP client). Where it runs follows the job's kind, as enqueued: an
    /// `.io` job on the async loop, a `.cpu` job in a pool process (which runs it to completion).
    public mutating func register<J: KilnJob>(
        _ job: J.Type, handler: @escaping @Sendable (J, JobContext) async throws -> J.Output
    ) {
        handlers[J.name] = .io { text, context in
            let job = try Self.decodePayload(J.self, text, type: J.name)
            return try JSONText.encode(try await handler(job, context))
        }
    }
}
