// A user-defined Kiln worker with one I/O job and one CPU job.
//
//   swift run kiln-example-worker                      # serves queue "example"
//   kiln enqueue example.greet '{"name":"Ada"}' --queue example --wait
//   kiln enqueue example.primes '{"below":100000}' --queue example --cpu --wait
import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging

struct Greeting: Codable, Sendable { var name: String }
struct Greeted: Codable, Sendable { var message: String }
struct PrimeRange: Codable, Sendable { var below: Int }
struct PrimeCount: Codable, Sendable { var below: Int; var count: Int }

var jobs = JobRegistry()

// I/O: async, runs on the worker's event loop, many at once.
jobs.io("example.greet", payload: Greeting.self) { greeting, ctx in
    ctx.logger.info("greeting \(greeting.name)")
    try await Task.sleep(for: .milliseconds(10))  // stands in for a network call
    return Greeted(message: "Hello, \(greeting.name)!")
}

// CPU: synchronous, runs in a child process of the worker's pool; a timeout kills the child.
jobs.cpu("example.primes", payload: PrimeRange.self) { range, _ in
    guard range.below >= 0, range.below <= 50_000_000 else {
        throw JobFailure("'below' must be from 0 to 50000000", type: "bad_payload", retryable: false)
    }
    var sieve = [Bool](repeating: true, count: max(range.below, 2))
    var count = 0
    for i in 2..<max(range.below, 2) where sieve[i] {
        count += 1
        var j = i * i
        while j < range.below { sieve[j] = false; j += i }
    }
    return PrimeCount(below: range.below, count: count)
}

// Pool children are this binary started again: they run jobs here and never return.
PoolChild.runIfChild(registry: jobs)

LoggingSystem.bootstrap(StreamLogHandler.standardError)
let env = ProcessInfo.processInfo.environment
do {
    var options = WorkerOptions(queues: ["example"])
    options.redis = try RedisConfiguration(url: env["KILN_REDIS_URL"] ?? "redis://127.0.0.1:6379")
    options.prefix = env["KILN_PREFIX"] ?? "kiln"
    try await Worker(options: options, registry: jobs, logger: Logger(label: "example")).run()
} catch {
    FileHandle.standardError.write(Data("example worker: \(error)\n".utf8))
    exit(1)
}
