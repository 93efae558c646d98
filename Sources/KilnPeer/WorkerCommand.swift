import ArgumentParser
import Foundation
import Kiln
import KilnWorker
import Logging
import ServiceLifecycle

/// `worker --concurrency C --processes P`: the library's `Worker` serving the bench queue until
/// SIGTERM or SIGINT (then it shuts down gracefully, as `kiln worker` does).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run Kiln's Worker with the peer job types until SIGTERM or SIGINT.",
        discussion: """
        C is Kiln's I/O concurrency (noop, sleep and echo jobs at once on the async loop); P is the \
        size of Kiln's process pool, which runs the cpu jobs (P at a time, in child processes). \
        Everything else is Kiln's default: lease 30 s, fetch batch 256, pool niceness 10 ($KILN_POOL_NICE changes it), \
        no I/O prefetch ($KILN_PREFETCH sets --prefetch; `info` then says so).
        """)

    @OptionGroup var peer: PeerOptions
    @Option(help: "I/O jobs at once.") var concurrency: Int = 10
    @Option(help: "Child processes for cpu jobs (0 = none).") var processes: Int = 1
    @Option(name: .customLong("pool-nice"), help: "How much nicer than the worker the pool's children run, 0-19 (also $KILN_POOL_NICE). Default: 10.") var poolNice: Int?

    func run() async throws {
        try KeySchema.checkQueueName(peer.queueName)
        var options = WorkerOptions(
            redis: try peer.redisConfiguration(), prefix: peer.prefix, queues: [peer.queueName],
            concurrency: concurrency, processes: processes)
        if let n = try poolNice ?? Self.environmentNumber("KILN_POOL_NICE") { options.poolNiceness = n }
        if let n = try Self.environmentNumber("KILN_PREFETCH") { options.prefetch = n }
        let logger = Logger(label: "kiln-peer.worker")
        let worker = try Worker(options: options, registry: PeerJobs.registry(), logger: logger)
        try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }

    /// A whole number from the environment (the harness passes no flags beyond C and P), or nil.
    static func environmentNumber(_ name: String) throws -> Int? {
        guard let text = ProcessInfo.processInfo.environment[name] else { return nil }
        guard let n = Int(text) else { throw KilnError(.invalidInput, "$\(name) must be a whole number, got '\(text.prefix(20))'") }
        return n
    }
}
