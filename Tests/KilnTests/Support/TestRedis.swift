import Foundation
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// A real redis-server for the tests (a `LocalRedisServer`): started on a free loopback port in a
/// temp dir, stopped when the test process exits. Tests isolate themselves with a key prefix.
final class TestRedis: Sendable {
    let server: LocalRedisServer
    var port: Int { server.port }
    var dir: String { server.dir }
    var password: String? { server.password }
    var url: String { server.url }

    /// The server shared by most tests (no password).
    static let shared: TestRedis = {
        do {
            let r = try TestRedis()
            atexit { TestRedis.shared.stop() }
            return r
        } catch {
            fatalError("cannot start redis-server for the tests: \(error) (`make test` installs it)")
        }
    }()

    init(password: String? = nil, extraArgs: [String] = [], dir: String? = nil, port: Int? = nil) throws {
        server = try LocalRedisServer(password: password, extraArgs: extraArgs, dir: dir, port: port)
    }

    /// Kills the server, keeping its dir (a test may restart a server there).
    func stop() { server.stop(removeDir: false) }

    var configuration: RedisConfiguration { server.configuration }

    /// A fresh key prefix, so tests sharing the server never see each other's keys.
    static func uniquePrefix() -> String { TestWorker.uniquePrefix() }

    func client(prefix: String, knownKinds: [String: JobKind] = [:]) throws -> KilnClient {
        try KilnClient(options: KilnClientOptions(redis: configuration, prefix: prefix, knownKinds: knownKinds))
    }

    static var redisServerPath: String { LocalRedisServer.serverPath ?? "/usr/bin/redis-server" }
    static func freePort() -> Int { LocalRedisServer.freePort() }
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
