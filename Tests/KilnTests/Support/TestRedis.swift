import Foundation
import Kiln
import KilnRedis

#if canImport(Glibc)
import Glibc
#endif

/// A real redis-server for the tests: started on a free loopback port in a temp dir, stopped when
/// the test process exits. Tests isolate themselves with a key prefix of their own.
final class TestRedis: @unchecked Sendable {
    let port: Int
    let dir: String
    let process: ChildProcess
    let password: String?

    /// The server shared by most tests (no password).
    static let shared: TestRedis = {
        do {
            let r = try TestRedis()
            atexit { TestRedis.stopShared() }
            return r
        } catch {
            fatalError("cannot start redis-server for the tests: \(error) (is redis-server installed? `make test` installs it)")
        }
    }()

    private static func stopShared() {
        kill(shared.process.pid, SIGKILL)
        try? FileManager.default.removeItem(atPath: shared.dir)
    }

    init(password: String? = nil, extraArgs: [String] = []) throws {
        self.password = password
        dir = NSTemporaryDirectory() + "kiln-redis-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lastError: Error = TestFailure("no attempt")
        for _ in 0..<5 {
            let port = Self.freePort()
            var args = [Self.redisServerPath, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
                        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "\(dir)/redis.log"]
            if let password { args += ["--requirepass", password] }
            args += extraArgs
            do {
                let p = try ChildProcess(args)
                if try Self.waitReady(port: port, password: password, process: p) {
                    self.port = port
                    self.process = p
                    return
                }
                lastError = TestFailure("redis-server on port \(port) did not become ready: \((try? String(contentsOfFile: "\(dir)/redis.log", encoding: .utf8)) ?? "")")
            } catch { lastError = error }
        }
        throw lastError
    }

    func stop() {
        process.signal(SIGKILL)
        _ = process.poll()
    }

    var url: String {
        if let password { return "redis://:\(password)@127.0.0.1:\(port)" }
        return "redis://127.0.0.1:\(port)"
    }

    var configuration: RedisConfiguration { try! RedisConfiguration(url: url) }

    /// A fresh key prefix, so tests sharing the server never see each other's keys.
    static func uniquePrefix() -> String { "t\(UUID().uuidString.prefix(8).lowercased())" }

    func client(prefix: String, knownKinds: [String: JobKind] = [:]) throws -> KilnClient {
        try KilnClient(options: KilnClientOptions(redis: configuration, prefix: prefix, knownKinds: knownKinds))
    }

    static let redisServerPath: String = {
        for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"] where FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        return "/usr/bin/redis-server"
    }()

    /// Asks the kernel for a free port by binding port 0 on loopback.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits (up to 10 s) until the server answers PING.
    private static func waitReady(port: Int, password: String?, process: ChildProcess) throws -> Bool {
        var config = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), connectTimeout: .milliseconds(200))
        config.password = password
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if process.poll() != nil { return false }
            if let ctx = try? HiredisPing.ping(config), ctx { return true }
            usleep(20_000)
        }
        return false
    }
}

/// A synchronous PING over a plain socket, for readiness checks: it must not need Swift's
/// cooperative threads, since it runs inside a static initializer that tests wait on.
enum HiredisPing {
    static func ping(_ config: RedisConfiguration) throws -> Bool {
        guard case .tcp(_, let port) = config.endpoint else { return false }
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
        var command = ""
        if let pw = config.password { command += "*2\r\n$4\r\nAUTH\r\n$\(pw.utf8.count)\r\n\(pw)\r\n" }
        command += "*1\r\n$4\r\nPING\r\n"
        _ = command.withCString { send(fd, $0, strlen($0), 0) }
        var buf = [UInt8](repeating: 0, count: 256)
        var got = ""
        while !got.contains("PONG") {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return false }
            got += String(decoding: buf[0..<n], as: UTF8.self)
            if got.contains("-") && !got.contains("PONG") { return false }
        }
        return true
    }
}

/// Where the built `kiln` binary is: $KILN_BIN, else .build/debug/kiln next to the tests.
enum KilnBinary {
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["KILN_BIN"] { return p }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        for dir in [".build/debug", ".build/x86_64-unknown-linux-gnu/debug", ".build/aarch64-unknown-linux-gnu/debug"] {
            let p = root.appendingPathComponent(dir).appendingPathComponent("kiln").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root.appendingPathComponent(".build/debug/kiln").path
    }()
}
