import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway redis-server on a free loopback port with a temp dir of its own, for `kiln demo`,
/// the tests and benchmarks. Never binds anything but 127.0.0.1.
public final class LocalRedisServer: Sendable {
    public let port: Int
    public let dir: String
    public let password: String?
    public let process: SpawnedProcess

    /// Starts the server and waits (up to 10 s) until it answers PING. Tries a few ports in case
    /// another process takes the free one first. Persistence is off unless `extraArgs` turn it on.
    /// `port`: a fixed port (e.g. to restart a server where clients expect it); default a free one.
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

    /// Kills the server (SIGKILL: it holds nothing worth saving) and removes its dir if asked.
    public func stop(removeDir: Bool = true) {
        process.signal(SIGKILL)
        _ = process.poll()
        if removeDir { try? FileManager.default.removeItem(atPath: dir) }
    }

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

    /// A synchronous PING over a plain socket. It needs no Swift concurrency, so it is safe in
    /// static initializers and before any async machinery is up.
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
