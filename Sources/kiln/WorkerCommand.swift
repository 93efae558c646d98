import ArgumentParser
import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker until SIGTERM or SIGINT.",
        discussion: "Logs one line per job start and finish at info level, on stderr.")

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Queues to serve, comma-separated; each gets its own fetch loop, sharing the slots (also $KILN_QUEUES). Default: default.") var queues: String?
    @Option(parsing: .unconditional, help: "I/O jobs run at once on the async loop (also $KILN_CONCURRENCY). Default: 256.") var concurrency: Int?
    @Option(parsing: .unconditional, help: "Child processes for CPU jobs (also $KILN_PROCESSES). Default: number of cores; 0 = no CPU jobs.") var processes: Int?
    @Option(name: .customLong("fetch-batch"), parsing: .unconditional, help: "Most jobs one fetch takes from Redis, 1-10000, bounded by free slots (also $KILN_FETCH_BATCH). Default: 256.") var fetchBatch: Int?
    @Option(name: .customLong("prefetch"), parsing: .unconditional, help: "I/O jobs held beyond --concurrency, so the next ones are here when a slot frees; at most --concurrency run at once and timeouts start when a job gets a slot (also $KILN_PREFETCH). Default: 0 (off).") var prefetch: Int?
    @Option(name: .customLong("cpu-prefetch"), parsing: .unconditional, help: "CPU jobs held beyond those the processes run: each process gets its next job in its pipe, the rest wait in a buffer; timeouts start when a process takes a job (also $KILN_CPU_PREFETCH). Default: 0 (off).") var cpuPrefetch: Int?
    @Option(name: .customLong("cpu-prefetch-low"), parsing: .unconditional, help: "With --cpu-prefetch, fetch again once this many CPU jobs still wait (also $KILN_CPU_PREFETCH_LOW). Default: a quarter of --cpu-prefetch.") var cpuPrefetchLow: Int?
    @Option(name: .customLong("pool-nice"), parsing: .unconditional, help: "How much nicer than the worker the CPU-job processes run, 0-19, so CPU work does not delay I/O jobs (also $KILN_POOL_NICE). Default: 10.") var poolNice: Int?
    @Option(parsing: .unconditional, help: ArgumentHelp("Lease per job, renewed every third of it.", valueName: "duration"), transform: DurationArgument.parse) var lease: DurationArgument = .init(.seconds(30))
    @Option(name: .customLong("shutdown-grace"), parsing: .unconditional, help: ArgumentHelp("On SIGTERM, how long running jobs may finish before they are handed back.", valueName: "duration"), transform: DurationArgument.parse)
    var shutdownGrace: DurationArgument = .init(.seconds(30))
    @Option(name: .customLong("retry-backoff"), parsing: .unconditional, help: ArgumentHelp("Delay before the first retry; doubles each time, with jitter.", valueName: "duration"), transform: DurationArgument.parse)
    var retryBackoff: DurationArgument = .init(.seconds(1))
    @Option(name: .customLong("dead-max"), parsing: .unconditional, help: "Most dead-lettered jobs kept per queue; the oldest beyond are deleted.") var deadMax: Int = 10_000
    @Option(name: .customLong("dead-max-age"), parsing: .unconditional, help: ArgumentHelp("Dead-lettered jobs older than this are deleted.", valueName: "duration"), transform: DurationArgument.parse)
    var deadMaxAge: DurationArgument = .init(.seconds(7 * 86_400))
    @Option(help: "Worker name in records and logs (default host:pid).") var name: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (also $KILN_LOG_LEVEL).") var logLevel: String?

    func run() async throws {
        let level = logLevel ?? ProcessInfo.processInfo.environment["KILN_LOG_LEVEL"] ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else {
            throw KilnError(.invalidInput, "invalid log level '\(level.prefix(20))': use trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = parsed
            return h
        }
        let env = ProcessInfo.processInfo.environment
        // A flag wins over its environment variable; both are checked the same way.
        func number(_ flag: Int?, _ name: String, _ option: String, _ range: ClosedRange<Int>) throws -> Int? {
            if let flag { return flag }
            return try CLI.environmentNumber(name, flag: option, in: range)
        }
        var options = WorkerOptions(
            redis: try connection.redisConfiguration(), prefix: connection.prefixValue(),
            queues: (queues ?? env["KILN_QUEUES"] ?? "default").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
            lease: lease.value, shutdownGrace: shutdownGrace.value, retryBackoff: retryBackoff.value)
        options.deadMax = deadMax
        options.deadMaxAge = deadMaxAge.value
        if let n = try number(concurrency, "KILN_CONCURRENCY", "--concurrency", 1...1_000_000) { options.concurrency = n }
        if let n = try number(processes, "KILN_PROCESSES", "--processes", 0...1024) { options.processes = n }
        if let n = try number(poolNice, "KILN_POOL_NICE", "--pool-nice", 0...19) { options.poolNiceness = n }
        if let n = try number(fetchBatch, "KILN_FETCH_BATCH", "--fetch-batch", 1...10_000) { options.fetchBatch = n }
        if let n = try number(prefetch, "KILN_PREFETCH", "--prefetch", 0...100_000) { options.prefetch = n }
        if let n = try number(cpuPrefetch, "KILN_CPU_PREFETCH", "--cpu-prefetch", 0...100_000) { options.cpuPrefetch = n }
        if let n = try number(cpuPrefetchLow, "KILN_CPU_PREFETCH_LOW", "--cpu-prefetch-low", 0...100_000) { options.cpuPrefetchLowWater = n }
        if let name { options.name = name }
        // `kiln-bench` measures the metrics' cost with an in-process backend (docs/performance.md).
        if env["KILN_BENCH_METRICS"] == "counting" { options.metricsFactory = CountingMetrics() }
        let logger = Logger(label: "kiln.worker")
        if connection.redis.map({ (try? RedisConfiguration(url: $0))?.password != nil }) == true {
            logger.warning("the Redis password given in --redis is visible to other users in ps; use $KILN_REDIS_URL or --redis-password-file")
        }
        let worker = try Worker(options: options, registry: BuiltinJobs.registry(), logger: logger)
        // The one place signals are handled: SIGTERM or SIGINT shuts the worker down gracefully.
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
