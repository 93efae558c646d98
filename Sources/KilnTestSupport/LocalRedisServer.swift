import Foundation
import KilnRedis
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway `redis-server` on a free loopback port with a temp dir of its own, for tests (yours
/// and Kiln's), `kiln demo` and the benchmarks. It never binds anything but 127.0.0.1 and keeps
/// nothing on disk unless asked. Needs `redis-server` installed (`apt-get install redis-server`).
///
/// ```swift
/// let redis = try LocalRedisServer()
/// defer { redis.stop() }
/// let client = try KilnClient(options: .init(redis: redis.configuration, prefix: "test"))
/// ```
/// or scoped: `try await LocalRedisServer.with { redis in ... }`.
public final class LocalRedisServer: Sendable {
    /// The loopback port the server listens on.
    public let port: Int
    /// The server's working directory (its log is `redis.log` there).
    public let dir: String
    /// The password it requires (`--requirepass`), if any.
    public let password: String?
    package let process: SpawnedProcess

    /// Starts the server and waits (up to 10 s) until it answers PING. Tries a few ports in case
    /// another process takes the free one first. Persistence is off unless `extraArgs` turn it on.
    ///
    /// - Parameters:
    ///   - password: a password to require (`--requirepass`); none by default.
    ///   - extraArgs: more `redis-server` arguments, e.g. `["--appendonly", "yes"]`.
    ///   - dir: the working directory; default a new one under the temp dir.
    ///   - port: a fixed port (e.g. to restart a server where clients expect it); default a free one.
    /// - Throws: a one-line error if `redis-server` is missing or does not start.
    public init(password: String? = nil, extraArgs: [String] = [], dir: String? = nil, port fixedPort: Int? = nil) throws {
        guard let server = Self.serverPath else {
            throw SpawnedProcess.SpawnError(message: "redis-server is not installed (make demo/make test install it; or apt-get install redis-server)")
        }
        let dir = dir ?? NSTemporaryDirectory() + "kiln-redis-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.dir = dir
        self.password = password
        var lastError = "no attempt"
        for _ in 0..<(fixedPort == nil ? 5 : 1) {
            let port = fixedPort ?? Self.freePort()
            var args = [server, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                        "--appendonly", "no", "--daemonize", "no", "--logfile", "\(dir)/redis.log"]
            if let password { args += ["--requirepass", password] }
            let p = try SpawnedProcess(args + extraArgs, environment: [:])
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, p.poll() == nil {
                if Self.ping(port: port, password: password) {
                    self.port = port
                    self.process = p
                    return
                }
                usleep(20_000)
            }
            p.signal(SIGKILL)
            lastError = (try? String(contentsOfFile: "\(dir)/redis.log", encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? "no log"
        }
        throw SpawnedProcess.SpawnError(message: "redis-server did not start: \(lastError)")
    }

    /// `redis://[:password@]127.0.0.1:PORT`.
    public var url: String {
        if let password { return "redis://:\(password)@127.0.0.1:\(port)" }
        return "redis://127.0.0.1:\(port)"
    }

    /// The server as a `RedisConfiguration`, for `KilnClientOptions` and `WorkerOptions`.
    public var configuration: RedisConfiguration {
        // `url` is always a valid Redis URL.
        try! RedisConfiguration(url: url)
    }

    /// Starts a server, runs `body` with it, and stops it (removing its dir) however `body` ends.
    public static func with<R>(password: String? = nil, extraArgs: [String] = [],
                               _ body: (LocalRedisServer) async throws -> R) async throws -> R {
        let server = try LocalRedisServer(password: password, extraArgs: extraArgs)
        defer { server.stop() }
        return try await body(server)
    }

    /// Kills the server (SIGKILL: it holds nothing worth saving) and removes its dir if asked.
    public func stop(removeDir: Bool = true) {
        process.signal(SIGKILL)
        _ = process.poll()
        if removeDir { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Where `redis-server` is installed, if it is.
    public static let serverPath: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        .first(where: FileManager.default.isExecutableFile)

    /// A port the kernel says is free on 127.0.0.1 (bind to port 0, read it back).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopback(port: 0)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether a Redis on 127.0.0.1:`port` answers PING, over a plain blocking socket (1 s
    /// timeout). It needs no Swift concurrency, so it is safe in static initializers.
    public static func ping(port: Int, password: String? = nil) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = loopback(port: port)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return false }
        var command = ""
        if let password { command += "*2\r\n$4\r\nAUTH\r\n$\(password.utf8.count)\r\n\(password)\r\n" }
        command += "*1\r\n$4\r\nPING\r\n"
        _ = command.withCString { send(fd, $0, strlen($0), 0) }
        var buf = [UInt8](repeating: 0, count: 256)
        var got = ""
        while !got.contains("PONG") {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 || (got.contains("-") && !got.contains("PONG")) { return false }
            got += String(decoding: buf[0..<n], as: UTF8.self)
        }
        return true
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }
}
