import ArgumentParser
import Foundation
import Kiln
import KilnWorker
import Logging

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker until SIGTERM or SIGINT.",
        discussion: "Logs one line per job start and finish at info level, on stderr.")

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Queues to serve, comma-separated, in priority order.") var queues: String = "default"
    @Option(help: "I/O jobs run at once on the async loop.") var concurrency: Int = 256
    @Option(help: "Child processes for CPU jobs (default: number of cores; 0 = no CPU jobs).") var processes: Int?
    @Option(help: ArgumentHelp("Lease per job, renewed every third of it.", valueName: "duration")) var lease: DurationArgument = .init(.seconds(30))
    @Option(name: .customLong("shutdown-grace"), help: ArgumentHelp("On SIGTERM, how long running jobs may finish before they are handed back.", valueName: "duration"))
    var shutdownGrace: DurationArgument = .init(.seconds(30))
    @Option(name: .customLong("retry-backoff"), help: ArgumentHelp("Delay before the first retry; doubles each time, with jitter.", valueName: "duration"))
    var retryBackoff: DurationArgument = .init(.seconds(1))
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
        var options = WorkerOptions(
            redis: try connection.redisConfiguration(), prefix: connection.prefixValue(),
            queues: queues.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
            concurrency: concurrency, lease: lease.value, shutdownGrace: shutdownGrace.value,
            retryBackoff: retryBackoff.value)
        if let processes { options.processes = processes }
        if let name { options.name = name }
        let worker = try Worker(options: options, registry: BuiltinJobs.registry(), logger: Logger(label: "kiln.worker"))
        try await worker.run()
    }
}
