import Foundation
import KilnRedis
import Logging

/// The producer side of Kiln: enqueue jobs, read and wait for their results, cancel them.
///
/// ```swift
/// let kiln = try KilnClient(options: .init(redis: RedisConfiguration(url: "redis://127.0.0.1:6379")))
/// let job = try await kiln.enqueue("echo", payload: ["hello": "world"])
/// let value = try await job.value(timeout: .seconds(5))
/// ```
/// One client is safe to share across tasks; its commands are pipelined on one connection.
///
/// **Lifetime.** A client owns two connections, each with a thread of its own (one for commands,
/// one for the result subscription, started by the first wait). `close()` ends both at once;
/// dropping the last reference to the client (handles keep it alive) does the same in `deinit`,
/// so a client cannot leak a thread. Waits in flight when it closes throw `CancellationError`.
public final class KilnClient: Sendable {
    /// The options the client was made with.
    public let options: KilnClientOptions
    /// Everything this client says to Redis goes through its store.
    package let store: KilnStore
    package var connection: RedisConnection { store.connection }
    /// Every wait of this client (`wait`, `JobHandle.value`, `waitAll`): one subscriber
    /// connection however many jobs are waited for.
    let results: ResultWaiters<WaitKey, JobRecord>
    let logger: Logger
    /// Enqueue metrics and spans (`KilnClient+observability.swift`).
    let observability: ClientObservability

    /// A client. Connects lazily: the first command opens the connection, so this only fails on an invalid prefix.
    public init(options: KilnClientOptions = KilnClientOptions(), logger: Logger = Logger(label: "kiln.client")) throws {
        guard KeySchema.isValidPrefix(options.prefix) else {
            throw KilnError(.invalidInput, "invalid key prefix '\(SafeText.escaped(String(options.prefix.prefix(70))))': use 1-64 printable characters without braces or a trailing colon")
        }
        self.options = options
        let store = KilnStore(prefix: options.prefix, connection: RedisConnection(configuration: options.redis))
        self.store = store
        self.results = KilnClient.resultWaiters(store: store, configuration: options.redis)
        self.logger = logger
        self.observability = ClientObservability(options)
    }

    /// Closes the client's connections and ends their threads; later calls fail with
    /// `RedisError(.closed)`. Called by `deinit` too, so it is needed only to close early.
    public func close() {
        connection.close()
        results.close()
    }

    deinit { close() }

    // MARK: enqueue

    /// Enqueues a job whose payload is JSON text. Returns a handle (a future) for its result.
    public func enqueue<Result: Decodable & Sendable>(
        _ type: String, json payload: String = "null", result: Result.Type = JSONValue.self, options: JobOptions = JobOptions()
    ) async throws -> JobHandle<Result> {
        let r = EnqueueRequest(type: type, payload: payload, options: options)
        let id = try await enqueueBatch([r])[0]
        return JobHandle(id: id, queue: options.queue, client: self, fresh: true)
    }

    /// Enqueues a job with a typed payload, and a typed result for its handle.
    public func enqueue<Payload: Encodable, Result: Decodable & Sendable>(
        _ type: String, payload: Payload, result: Result.Type = JSONValue.self, options: JobOptions = JobOptions()
    ) async throws -> JobHandle<Result> {
        let text: String
        do { text = try JSONText.encode(payload) } catch {
            throw KilnError(.invalidInput, "payload for '\(type)' could not be encoded as JSON: \(error)")
        }
        let id = try await enqueueBatch([EnqueueRequest(type: type, payload: text, options: options)])[0]
        return JobHandle(id: id, queue: options.queue, client: self, fresh: true)
    }

    /// Enqueues many jobs in one pipeline and returns their ids in order. Every request is
    /// checked first: if any is invalid nothing is written and the error names its position.
    /// Jobs of one queue are written by `enqueue` calls of up to 500 jobs, each all or
    /// nothing; an id that already exists refuses its whole call.
    public func enqueueBatch(_ requests: [EnqueueRequest]) async throws -> [String] {
        if requests.isEmpty { return [] }
        return try await observability.enqueue(requests) { try await enqueueBatch(requests, traceparent: $0) }
    }

    /// `enqueueBatch`, every job storing `traceparent` (empty: none).
    private func enqueueBatch(_ requests: [EnqueueRequest], traceparent: String) async throws -> [String] {
        var jobs: [NewJob] = []
        jobs.reserveCapacity(requests.count)
        // Positions of the requests of each queue, in order.
        var byQueue: [String: [Int]] = [:]
        var queueOrder: [String] = []
        for (i, r) in requests.enumerated() {
            do { try validate(r) } catch let e as KilnError where requests.count > 1 {
                throw KilnError(e.code, "job \(i + 1): \(e.message)")
            }
            jobs.append(NewJob(id: r.options.id ?? JobID.make(), type: r.type, kind: r.options.kind ?? options.knownKinds[r.type] ?? .io,
                               payload: r.payload, maxAttempts: r.options.retries + 1,
                               timeoutMs: KilnDuration.milliseconds(r.options.timeout),
                               resultTTLms: KilnDuration.milliseconds(r.options.resultTTL)))
            jobs[i].traceparent = traceparent
            let q = r.options.queue
            if byQueue[q] == nil { queueOrder.append(q) }
            byQueue[q, default: []].append(i)
        }
        try await ready(mark: true)
        try await checkChosenIDs(requests, jobs: jobs)
        let now = KilnClock.nowMs()
        var chunks: [(queue: String, positions: ArraySlice<Int>)] = []
        for q in queueOrder {
            let positions = byQueue[q]!
            for start in stride(from: 0, to: positions.count, by: KilnStore.enqueueChunk) {
                chunks.append((q, positions[start..<min(positions.count, start + KilnStore.enqueueChunk)]))
            }
        }
        let calls = chunks.map { c in (queue: c.queue, jobs: ArraySlice(c.positions.map { jobs[$0] })) }
        var tries = 0
        let replies = try await withRetry {
            tries += 1
            return try await store.enqueue(calls, registering: queueOrder.sorted(), now: now)
        }
        for ((queue, chunk), (call, reply)) in zip(chunks, zip(calls, replies)) {
            switch reply {
            case .written: continue
            case .refused(let e):
                throw KilnError(.redis, "Redis at \(options.redis.address) refused to enqueue job \(chunk.first! + 1): \(e)")
            case .exists(let first, let count):
                // After a dropped connection, every id of the call may exist because our own earlier
                // try wrote them all (the call is atomic) before the reply was lost.
                if tries > 1, count == chunk.count,
                   try await writtenByEarlierTry(chunk, of: requests, jobs: Array(call.jobs), queue: queue, now: now) { continue }
                let i = chunk[chunk.startIndex + first - 1]
                let position = requests.count > 1 ? "job \(i + 1): " : ""
                throw KilnError(.duplicateJob, "\(position)a job with id '\(jobs[i].id)' already exists in queue '\(requests[i].options.queue)'")
            }
        }
        return jobs.map(\.id)
    }

    /// Caller-chosen ids must be new, and unique within the batch: checked before anything is
    /// written, so a batch is refused whole. (A producer racing to write the same id between this
    /// check and the write is still refused by the enqueue script, after the jobs before it.)
    private func checkChosenIDs(_ requests: [EnqueueRequest], jobs: [NewJob]) async throws {
        let ids = jobs.map(\.id)
        let chosen = requests.indices.filter { requests[$0].options.id != nil }
        if chosen.isEmpty { return }
        var seen = Set<String>()
        for i in chosen where !seen.insert("\(requests[i].options.queue) \(ids[i])").inserted {
            throw KilnError(.duplicateJob, "job \(i + 1): the id '\(ids[i])' appears twice in the batch")
        }
        let exist: [Bool]
        do {
            exist = try await store.exist(chosen.map { (requests[$0].options.queue, ids[$0]) })
        } catch { throw KilnError.wrap(error) }
        for (i, exists) in zip(chosen, exist) where exists {
            let position = requests.count > 1 ? "job \(i + 1): " : ""
            throw KilnError(.duplicateJob, "\(position)a job with id '\(ids[i])' already exists in queue '\(requests[i].options.queue)'")
        }
    }

    /// Checks one request against the limits; throws `KilnError(.invalidInput/.tooLarge)`.
    package func validate(_ r: EnqueueRequest) throws {
        try r.check(maxPayloadBytes: options.maxPayloadBytes)
    }

    /// Runs `body` under the client's retry policy (`KilnStore.withRetry`).
    func withRetry<T>(until deadline: ContinuousClock.Instant? = nil, _ body: () async throws -> T) async throws -> T {
        try await store.withRetry(options.retry, logger: logger, until: deadline, body)
    }

    /// Checks the prefix's version marker (once per client; `mark`: write it if missing).
    func ready(mark: Bool) async throws {
        try await withRetry { try await store.checkVersion(mark: mark) }
    }

    // MARK: reading

    /// The queue a job lives in: `queue` if given, else found by looking in every known queue.
    /// Throws `KilnError(.noSuchJob)`.
    package func locate(_ id: String, queue: String? = nil) async throws -> (queue: String, record: JobRecord) {
        try await locate(id, queue: queue, until: nil)
    }

    /// `locate`, retrying network failures until `deadline` when there is one.
    func locate(_ id: String, queue: String?, until deadline: ContinuousClock.Instant?) async throws -> (queue: String, record: JobRecord) {
        guard JobID.isValid(id) else {
            throw KilnError(.invalidInput, "invalid job id '\(SafeText.escaped(String(id.prefix(40))))': use 1-128 printable characters without spaces, braces or colons")
        }
        if let queue { try KeySchema.checkQueueName(queue) }
        let found: (queue: String, record: JobRecord)? = try await withRetry(until: deadline) {
            try await store.checkVersion(mark: false)
            let candidates = if let queue { [queue] } else { try await store.queueNames() }
            return try await store.find(id: id, in: candidates)
        }
        if let found { return found }
        throw KilnError(.noSuchJob, "no job with id \(id)\(queue.map { " in queue '\($0)'" } ?? "") (never enqueued, or its record expired)")
    }

    /// The job's current record. Throws `KilnError(.noSuchJob)`.
    public func record(_ id: String, queue: String? = nil) async throws -> JobRecord {
        try await locate(id, queue: queue).record
    }

    /// Per-queue counts: queued (both kinds), running, retrying (scheduled) and dead.
    public func queueStats() async throws -> [QueueStats] {
        try await withRetry {
            try await store.checkVersion(mark: false)
            return try await store.counts(queues: try await store.queueNames())
        }
    }
}
