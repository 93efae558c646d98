// A user-defined Kiln worker with one I/O job and one CPU job, as typed jobs.
//
//   swift run kiln-example-worker                      # serves queue "example"
//   kiln enqueue example.greet '{"name":"Ada"}' --queue example --wait
//   kiln enqueue example.primes '{"below":100000}' --queue example --cpu --wait
import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle

/// I/O: async, runs on the worker's async loop, many at once.
struct Greet: IOJob {
    static let name = "example.greet"
    static let defaultOptions = JobOptions(queue: "example")
    var name: String

    struct Greeted: Codable, Sendable { var message: String }

    func run(context: JobContext) async throws -> Greeted {
        context.logger.info("greeting \(name)")
        try await Task.sleep(for: .milliseconds(10))  // stands in for a network call
        return Greeted(message: "Hello, \(name)!")
    }
}

/// CPU: synchronous, runs in a child process of the worker's pool; a timeout kills the child.
struct CountPrimes: CPUJob {
    static let name = "example.primes"
    static let defaultOptions = JobOptions(queue: "example")
    var below: Int

    struct PrimeCount: Codable, Sendable { var below: Int; var count: Int }

    func run(context: JobContext) throws -> PrimeCount {
        guard below >= 0, below <= 50_000_000 else {
            throw JobFailure("'below' must be from 0 to 50000000", type: "bad_payload", retryable: false)
        }
        var sieve = [Bool](repeating: true, count: max(below, 2))
        var count = 0
        for i in 2..<max(below, 2) where sieve[i] {
            count += 1
            var j = i * i
            while j < below { sieve[j] = false; j += i }
        }
        return PrimeCount(below: below, count: count)
    }
}

var jobs = JobRegistry()
jobs.register(Greet.self)
jobs.register(CountPrimes.self)

// Pool children are this binary started again: they run jobs here and never return.
PoolChild.runIfChild(registry: jobs)

LoggingSystem.bootstrap(StreamLogHandler.standardError)
let env = ProcessInfo.processInfo.environment
let logger = Logger(label: "example")
do {
    var options = WorkerOptions(queues: ["example"])
    options.redis = try RedisConfiguration(url: env["KILN_REDIS_URL"] ?? "redis://127.0.0.1:6379")
    options.prefix = env["KILN_PREFIX"] ?? "kiln"
    let worker = try Worker(options: options, registry: jobs, logger: logger)
    // The application owns the signals: SIGTERM or SIGINT shuts the worker down gracefully.
    let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    try await group.run()
} catch {
    FileHandle.standardError.write(Data("example worker: \(error)\n".utf8))
    exit(1)
}
