import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle

/// A worker with the chaos job types, for `kiln-chaos worker` and `kiln-chaos hosts worker`:
/// command timeout 2 s (so a dead Redis or a cut link is noticed within one lease), one pool
/// process, notice-level logs on stderr. Returns the exit code.
enum ChaosWorker {
    static func run(redisURL: String, queue: String, concurrency: Int, lease: Duration, name: String, label: String) async -> Int32 {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .notice
            return h
        }
        do {
            var redis = try RedisConfiguration(url: redisURL)
            redis.commandTimeout = .seconds(2)
            var options = WorkerOptions(
                redis: redis, queues: [queue], concurrency: concurrency, processes: 1, lease: lease,
                shutdownGrace: .seconds(2), retryBackoff: .milliseconds(100), reapInterval: .milliseconds(250),
                name: name)
            // CHAOS_CPU_PREFETCH=N: the workers run with `--cpu-prefetch N` (default 0, off).
            options.cpuPrefetch = Int(ProcessInfo.processInfo.environment["CHAOS_CPU_PREFETCH"] ?? "") ?? 0
            let logger = Logger(label: label)
            let worker = try Worker(options: options, registry: ChaosJobs.registry(), logger: logger)
            try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(label): \(error)\n".utf8))
            return 1
        }
    }
}
