import ArgumentParser
import Foundation
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// `kiln demo`: starts a throwaway Redis and a worker under a temp dir, runs the classic
/// scenarios, prints a table of what happened with timings, and cleans up.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Kiln end to end against a throwaway local Redis and print what happened.")

    @Option(parsing: .unconditional, help: "Pool processes for the demo worker.") var processes: Int = 2
    @Option(name: .customLong("drain-jobs"), parsing: .unconditional, help: "How many noop jobs the drain scenario uses.") var drainJobs: Int = 20_000

    func run() async throws {
        let env = try DemoEnvironment.start(processes: processes)
        defer { env.stop() }
        print("Kiln demo: redis-server on 127.0.0.1:\(env.port), one worker (--concurrency 500, --processes \(processes)), temp dir \(env.dir)\n")
        let client = try KilnClient(options: KilnClientOptions(
            redis: try RedisConfiguration(url: env.url), prefix: "demo", knownKinds: BuiltinJobs.kinds))
        defer { client.close() }
        var scenarios = DemoScenarios(client: client, table: DemoTable())
        let table = try await scenarios.runAll(drainJobs: drainJobs, processes: processes)
        table.print()
        print("\nWorker log: \(env.logLines()) lines; last ones:")
        for line in env.logTail(4) { print("  " + line) }
    }
}

/// The throwaway Redis and worker.
final class DemoEnvironment: Sendable {
    let redis: LocalRedisServer
    let worker: SpawnedProcess
    var dir: String { redis.dir }
    var port: Int { redis.port }
    var url: String { redis.url }

    private init(redis: LocalRedisServer, worker: SpawnedProcess) {
        self.redis = redis
        self.worker = worker
    }

    static func start(processes: Int) throws -> DemoEnvironment {
        let redis: LocalRedisServer
        do { redis = try LocalRedisServer(dir: NSTemporaryDirectory() + "kiln-demo-\(getpid())") } catch {
            throw KilnError(.redis, "cannot start the demo's Redis: \(error)")
        }
        var env = ProcessInfo.processInfo.environment
        env["KILN_REDIS_URL"] = redis.url
        env["KILN_PREFIX"] = "demo"
        env["KILN_LOG_LEVEL"] = "warning"
        let worker = try SpawnedProcess(
            [ProcessPool.currentExecutable, "worker", "--concurrency", "500", "--processes", String(processes),
             "--lease", "5s", "--shutdown-grace", "5s", "--retry-backoff", "200ms", "--name", "demo-worker"],
            environment: env, stderr: "\(redis.dir)/worker.log")
        return DemoEnvironment(redis: redis, worker: worker)
    }

    /// Stops the worker gracefully (SIGTERM), then the server, and removes the temp dir.
    func stop() {
        worker.signal(SIGTERM)
        var n = 0
        while worker.poll() == nil && n < 500 { usleep(10_000); n += 1 }
        redis.stop()
    }

    private var log: [Substring] { ((try? String(contentsOfFile: "\(dir)/worker.log", encoding: .utf8)) ?? "").split(separator: "\n") }
    func logLines() -> Int { log.count }
    func logTail(_ n: Int) -> [String] { log.suffix(n).map { String($0.prefix(160)) } }
}
