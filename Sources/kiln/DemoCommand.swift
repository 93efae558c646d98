import ArgumentParser
import Foundation
import Kiln
import KilnRedis
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

    @Option(help: "Pool processes for the demo worker.") var processes: Int = 2
    @Option(name: .customLong("drain-jobs"), help: "How many noop jobs the drain scenario uses.") var drainJobs: Int = 20_000

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
final class DemoEnvironment: @unchecked Sendable {
    let dir: String
    let port: Int
    let redis: SpawnedProcess
    let worker: SpawnedProcess
    var url: String { "redis://127.0.0.1:\(port)" }

    private init(dir: String, port: Int, redis: SpawnedProcess, worker: SpawnedProcess) {
        self.dir = dir
        self.port = port
        self.redis = redis
        self.worker = worker
    }

    static func start(processes: Int) throws -> DemoEnvironment {
        let dir = NSTemporaryDirectory() + "kiln-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first(where: FileManager.default.isExecutableFile) else {
            throw KilnError(.invalidInput, "redis-server is not installed (make demo installs it; or apt-get install redis-server)")
        }
        let port = freePort()
        let redis = try SpawnedProcess(
            [server, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
            environment: [:], stdout: "\(dir)/redis.log", stderr: "\(dir)/redis.log")
        let probe = RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
        defer { probe.close() }
        let deadline = Date().addingTimeInterval(10)
        while !pingSync(port: port) {
            if Date() > deadline || redis.poll() != nil {
                throw KilnError(.redis, "the demo's redis-server did not start; see \(dir)/redis.log")
            }
            usleep(20_000)
        }
        var workerEnv = ProcessInfo.processInfo.environment
        workerEnv["KILN_REDIS_URL"] = "redis://127.0.0.1:\(port)"
        workerEnv["KILN_PREFIX"] = "demo"
        workerEnv["KILN_LOG_LEVEL"] = "warning"
        let worker = try SpawnedProcess(
            [ProcessPool.currentExecutable, "worker", "--concurrency", "500", "--processes", String(processes),
             "--lease", "5s", "--shutdown-grace", "5s", "--retry-backoff", "200ms", "--name", "demo-worker"],
            environment: workerEnv, stderr: "\(dir)/worker.log")
        return DemoEnvironment(dir: dir, port: port, redis: redis, worker: worker)
    }

    func stop() {
        worker.signal(SIGTERM)
        var n = 0
        while worker.poll() == nil && n < 500 { usleep(10_000); n += 1 }
        redis.signal(SIGKILL)
        _ = redis.poll()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func logLines() -> Int { ((try? String(contentsOfFile: "\(dir)/worker.log", encoding: .utf8)) ?? "").split(separator: "\n").count }
    func logTail(_ n: Int) -> [String] {
        ((try? String(contentsOfFile: "\(dir)/worker.log", encoding: .utf8)) ?? "").split(separator: "\n").suffix(n).map { String($0.prefix(160)) }
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// PING over a plain socket, before any async machinery is needed.
    static func pingSync(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return false }
        _ = "PING\r\n".withCString { send(fd, $0, 6, 0) }
        var buf = [UInt8](repeating: 0, count: 16)
        return recv(fd, &buf, 16, 0) > 0 && buf[0] == UInt8(ascii: "+")
    }
}
