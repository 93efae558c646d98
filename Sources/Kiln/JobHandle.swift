/// A future for one job's result. Get one from `KilnClient.enqueue`, or make one from an id.
public struct JobHandle<Result: Decodable & Sendable>: Sendable {
    /// The job's id.
    public let id: String
    /// The job's queue.
    public let queue: String
    /// The client the handle reads and waits through (the handle keeps it open).
    public let client: KilnClient
    /// Made by `enqueue`: the job exists, so waiting needs no read before the first wait.
    let fresh: Bool

    /// A handle for a job enqueued earlier (by this process, another one, or the CLI).
    public init(id: String, queue: String, client: KilnClient) {
        self.init(id: id, queue: queue, client: client, fresh: false)
    }

    init(id: String, queue: String, client: KilnClient, fresh: Bool) {
        self.id = id
        self.queue = queue
        self.client = client
        self.fresh = fresh
    }

    /// Waits for the job and returns its decoded result. Throws `KilnError(.jobUnsuccessful)`
    /// (with the final record) if it failed, timed out, was cancelled or died;
    /// `.waitTimedOut` if it is still unfinished after `timeout`.
    public func value(timeout: Duration = .seconds(300)) async throws -> Result {
        let rec = try await client.wait(id, queue: queue, timeout: timeout, knownToExist: fresh)
        guard rec.status == .succeeded else {
            let why = rec.error.map { ": \($0.message)" } ?? ""
            throw KilnError(.jobUnsuccessful, "job \(id) ended \(rec.statusText)\(why)", record: rec)
        }
        do {
            return try JSONText.decode(Result.self, from: rec.result ?? "null")
        } catch {
            throw KilnError(.protocolViolation, "the result of job \(id) does not decode as \(Result.self): \(error)")
        }
    }

    /// Waits for the job to finish and returns its final record, whatever the outcome.
    public func wait(timeout: Duration = .seconds(300)) async throws -> JobRecord {
        try await client.wait(id, queue: queue, timeout: timeout, knownToExist: fresh)
    }

    /// The job's record now.
    public func record() async throws -> JobRecord {
        try await client.record(id, queue: queue)
    }

    /// The job's status now (`nil` if the stored status is not one Kiln knows).
    public func status() async throws -> JobStatus? {
        try await record().status
    }

    /// Cancels the job (see `KilnClient.cancel`).
    @discardableResult
    public func cancel(wait: Duration = .seconds(10)) async throws -> CancelOutcome {
        try await client.cancel(id, queue: queue, wait: wait)
    }
}
