import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle

/// A Kiln worker: serves queues with an async executor for I/O jobs and a pool of child
/// processes for CPU jobs, renews leases, reaps expired ones and listens for cancels.
///
/// A worker is a swift-service-lifecycle `Service`: run it in the application's `ServiceGroup`,
/// beside its other services. The group owns the process's signals; on graceful shutdown the
/// worker stops fetching, lets running jobs finish for `shutdownGrace`, hands the rest back to
/// their queues and returns. The library itself installs no signal handler.
///
/// ```swift
/// var jobs = JobRegistry()
/// jobs.register(Greet.self)
/// PoolChild.runIfChild(registry: jobs)   // first thing in main: pool children stop here
/// let worker = try Worker(options: WorkerOptions(), registry: jobs, logger: logger)
/// let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
/// The pool's children are this same executable started again in child mode, so a binary that
/// calls `PoolChild.runIfChild` early gets a process pool for its own CPU handlers.
public struct Worker: Service {
    /// The options the worker was made with.
    public let options: WorkerOptions
    /// The handlers it runs.
    public let registry: JobRegistry
    /// Its logger; job log lines add `job.id`, `job.type` and `attempt`.
    public let logger: Logger
    /// The parts, in start order; shutdown runs in reverse (executor first, pool last).
    package let services: [any Service]
    let running: RunningJobs
    let store: KilnStore
    package var connection: RedisConnection { store.connection }

    /// A worker. Throws `KilnError(.invalidInput)` naming a bad option; connects to Redis only in `run()`.
    public init(options: WorkerOptions, registry: JobRegistry, logger: Logger = Logger(label: "kiln.worker")) throws {
        try options.validate()
        self.options = options
        self.registry = registry
        var log = logger
        log[metadataKey: "worker"] = "\(options.name)"
        self.logger = log
        let store = KilnStore(prefix: options.prefix, connection: RedisConnection(configuration: options.redis))
        self.store = store
        let running = RunningJobs()
        self.running = running
        let pool = options.processes > 0
            ? ProcessPool(size: options.processes, logger: log, killGrace: options.killGrace, niceness: options.poolNiceness,
                          pipelined: options.cpuPrefetch > 0) : nil
        let runner = JobRunner(options: options, registry: registry, store: store, pool: pool, running: running,
                               deadlines: Deadlines(), logger: log,
                               ioRunSlots: options.prefetch > 0 ? SlotPool(capacity: options.concurrency) : nil)
        let leases = LeaseKeeper(options: options, store: store, running: running, logger: log)
        let executor = JobExecutor(
            options: options, runner: runner, store: store, running: running,
            ioSlots: SlotPool(capacity: options.concurrency + options.prefetch),
            cpuSlots: pool.map { SlotPool(capacity: $0.size + options.cpuPrefetch) }, logger: log)
        var services: [any Service] = []
        if let pool { services.append(pool) }
        services.append(leases)
        services.append(Reaper(options: options, store: store, logger: log))
        services.append(CancelListener(options: options, store: store, running: running, leases: leases, logger: log))
        services.append(executor)
        self.services = services
    }

    /// Checks that Redis is reachable with these credentials; throws a one-line error if not.
    public func checkConnection() async throws {
        do {
            _ = try await connection.send(["PING"])
        } catch { throw KilnError(.redis, (error as? RedisError)?.message ?? "\(error)") }
    }

    /// Waits for Redis: a worker started while Redis restarts or is unreachable waits (logging
    /// once) rather than exiting; a wrong password or bad database fails at once. Then checks
    /// the prefix's version marker (writing it if missing): a prefix of another protocol
    /// version stops the worker before it reads or writes any job.
    package func waitForRedis() async throws {
        var backoff = Backoff(initial: .milliseconds(100), max: .seconds(2))
        var logged = false
        while true {
            do {
                _ = try await connection.send(["PING"])
                try await store.checkVersion(mark: true)
                if logged { logger.info("Redis at \(options.redis.address) is reachable") }
                return
            } catch let e as RedisError where e.isTransient {
                if !logged {
                    logger.error("waiting for Redis: \(e.message)")
                    logged = true
                }
                try await Task.sleep(for: backoff.next())
            } catch let e as RedisError {
                throw KilnError(.redis, e.message)
            }
        }
    }

    /// Runs until the enclosing `ServiceGroup` shuts it down gracefully (then running jobs get
    /// `shutdownGrace` to finish) or the task is cancelled. Run outside a group, it runs until
    /// cancelled. Waits for Redis first (a graceful shutdown meanwhile returns at once).
    public func run() async throws {
        PoolChild.runIfChild(registry: registry)
        do {
            try await cancelWhenGracefulShutdown { try await waitForRedis() }
        } catch is CancellationError {
            connection.close()
            if Task.isCancelled { throw CancellationError() }
            logger.info("worker stopped before Redis was reachable")
            return
        }
        logger.info("worker started", metadata: [
            "queues": "\(options.queues.joined(separator: ","))", "concurrency": "\(options.concurrency)",
            "processes": "\(options.processes)", "prefetch": "\(options.prefetch)", "cpu_prefetch": "\(options.cpuPrefetch)", "redis": "\(options.redis)",
        ])
        // The parts form a group of their own, without signals: a group run inside a service
        // follows the enclosing group's graceful shutdown, and shuts its parts down in reverse.
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                logger: logger))
        defer { connection.close() }
        try await group.run()
        logger.info("worker stopped")
    }
}
