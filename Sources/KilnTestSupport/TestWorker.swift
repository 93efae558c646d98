import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle

/// A Kiln worker running inside the test process, with a client on the same Redis and prefix.
/// Made by `withTestWorker`, which stops the worker gracefully when its body returns.
///
/// ```swift
/// var jobs = JobRegistry()
/// jobs.register(Greet.self)
/// try await LocalRedisServer.with { redis in
///     try await withTestWorker(redis: redis, registry: jobs) { worker in
///         let job = try await worker.client.enqueue(Greet(name: "Ada"))
///         let record = try await worker.waitForJob(job.id)
///         #expect(record.status == .succeeded)
///     }
/// }
/// ```
///
/// CPU jobs run only in a process pool, whose children are the running binary started again; a
/// test runner does not call `PoolChild.runIfChild`, so a test worker has no pool
/// (`processes` 0) unless you pass options that ask for one from a binary of your own.
public struct TestWorker: Sendable {
    /// A client on the worker's Redis and prefix (closed when the `withTestWorker` scope ends).
    public let client: KilnClient
    /// The options the worker runs with.
    public let options: WorkerOptions

    /// Waits until job `id` has ended (succeeded, failed, dead, timed out or cancelled) and
    /// returns its record. Does not poll (`KilnClient.wait`).
    /// - Throws: a one-line `KilnError` if it has not ended within `timeout`, or does not exist.
    public func waitForJob(_ id: String, queue: String? = nil, timeout: Duration = .seconds(30)) async throws -> JobRecord {
        try await client.wait(id, queue: queue, timeout: timeout)
    }

    /// A fresh key prefix (`t` and 8 hex digits), so tests sharing one Redis never see each
    /// other's keys.
    public static func uniquePrefix() -> String { "t\(UUID().uuidString.prefix(8).lowercased())" }

    /// Worker options for a test: the server's Redis, a small I/O concurrency, no process pool,
    /// a short shutdown grace (2 s) and a short lease (5 s), so stopping and reclaiming are fast.
    public static func options(redis: LocalRedisServer, prefix: String = uniquePrefix(),
                               queues: [String] = ["default"], concurrency: Int = 16) -> WorkerOptions {
        var options = WorkerOptions(redis: redis.configuration, prefix: prefix, queues: queues, concurrency: concurrency,
                                    processes: 0, lease: .seconds(5), shutdownGrace: .seconds(2))
        options.name = "test-\(prefix)"
        return options
    }
}

/// Runs a worker for `registry` in this process against `redis` (with `TestWorker.options`),
/// calls `body` while it runs, then shuts the worker down gracefully (running jobs finish within
/// the shutdown grace, the rest are handed back) and returns what `body` returned.
public func withTestWorker<R>(
    redis: LocalRedisServer, registry: JobRegistry, prefix: String = TestWorker.uniquePrefix(),
    queues: [String] = ["default"], logger: Logger = Logger(label: "kiln.test-worker"),
    _ body: (TestWorker) async throws -> R
) async throws -> R {
    try await withTestWorker(options: TestWorker.options(redis: redis, prefix: prefix, queues: queues),
                             registry: registry, logger: logger, body)
}

/// Runs a worker with these `options` in this process, calls `body` while it runs, then shuts the
/// worker down gracefully and returns what `body` returned. The worker is up (Redis reachable,
/// version marker checked) before `body` starts. Installs no signal handlers.
/// - Throws: a one-line error if the options are invalid or Redis refuses the worker; what `body`
///   throws; or what a worker service threw.
public func withTestWorker<R>(
    options: WorkerOptions, registry: JobRegistry, logger: Logger = Logger(label: "kiln.test-worker"),
    _ body: (TestWorker) async throws -> R
) async throws -> R {
    let worker = try Worker(options: options, registry: registry, logger: logger)
    defer { worker.connection.close() }
    try await worker.waitForRedis()
    let kinds = registry.handlers.mapValues(\.kind)
    let client = try KilnClient(options: KilnClientOptions(redis: options.redis, prefix: options.prefix, knownKinds: kinds))
    defer { client.close() }
    // The worker is a Service: the group's graceful shutdown is the worker's.
    let group = ServiceGroup(services: [worker], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let result: Result<R, any Error>
        do {
            result = .success(try await body(TestWorker(client: client, options: options)))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try result.get()
    }
}
