import Foundation
import KilnRedis
import Testing

@Suite struct RedisClientTests {
    let redis = TestRedis.shared

    @Test func pipelinesManyConcurrentCommands() async throws {
        let conn = RedisConnection(configuration: redis.configuration)
        defer { conn.close() }
        let key = "rc:\(UUID().uuidString)"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask { try await conn.send(["RPUSH", key, String(i)]) }
            }
            try await group.waitForAll()
        }
        #expect(try await conn.send(["LLEN", key]).int == 2000)
        let replies = try await conn.pipeline([["SET", key + "x", "v"], ["GET", key + "x"], ["INCR", key + "x"]])
        #expect(replies[0] == .status("OK"))
        #expect(replies[1] == .bulk("v"))
        if case .error(let e) = replies[2] { #expect(e.contains("not an integer")) } else { Issue.record("expected an error reply") }
    }

    @Test func binarySafeArguments() async throws {
        let conn = RedisConnection(configuration: redis.configuration)
        defer { conn.close() }
        let key = "rc:\(UUID().uuidString)"
        let value = "with\0nul and ünïcode \r\n and spaces"
        try await conn.send(["SET", key, value])
        #expect(try await conn.send(["GET", key]).string == value)
    }

    @Test func errorReplyThrowsWithCommandName() async throws {
        let conn = RedisConnection(configuration: redis.configuration)
        defer { conn.close() }
        await #expect(throws: RedisError.self) { try await conn.send(["NOSUCHCOMMAND"]) }
    }

    @Test func refusedConnectionNamesHostAndPort() async throws {
        let port = TestRedis.freePort()
        let conn = RedisConnection(configuration: try RedisConfiguration(url: "redis://:topsecret@127.0.0.1:\(port)"))
        defer { conn.close() }
        do {
            try await conn.send(["PING"])
            Issue.record("expected a connection error")
        } catch let e as RedisError {
            #expect(e.code == .connectionFailed)
            #expect(e.message.contains("127.0.0.1:\(port)"))
            #expect(!e.message.contains("topsecret"))
        }
    }

    @Test func wrongPasswordSaysAuthenticationFailed() async throws {
        let secured = try TestRedis(password: "right-pass")
        defer { secured.stop() }
        let conn = RedisConnection(configuration: try RedisConfiguration(url: "redis://:wrong-pass@127.0.0.1:\(secured.port)"))
        defer { conn.close() }
        do {
            try await conn.send(["PING"])
            Issue.record("expected an authentication error")
        } catch let e as RedisError {
            #expect(e.code == .authenticationFailed)
            #expect(e.message.contains("authentication failed"))
            #expect(!e.message.contains("wrong-pass"))
        }
        let good = RedisConnection(configuration: secured.configuration)
        defer { good.close() }
        #expect(try await good.send(["PING"]).string == "PONG")
    }

    @Test func aclUserAndDatabaseSelection() async throws {
        let conn = RedisConnection(configuration: redis.configuration)
        defer { conn.close() }
        let user = "u\(UUID().uuidString.prefix(6))"
        try await conn.send(["ACL", "SETUSER", user, "on", ">pw1", "~*", "+@all"])
        let acl = RedisConnection(configuration: try RedisConfiguration(url: "redis://\(user):pw1@127.0.0.1:\(redis.port)/5"))
        defer { acl.close() }
        #expect(try await acl.send(["ACL", "WHOAMI"]).string == user)
        try await acl.send(["SET", "dbcheck-\(user)", "1"])
        #expect(try await conn.send(["EXISTS", "dbcheck-\(user)"]).int == 0)  // it went to db 5
        try await conn.send(["ACL", "DELUSER", user])
    }

    @Test func reconnectsAfterServerRestart() async throws {
        let own = try TestRedis()
        let conn = RedisConnection(configuration: own.configuration)
        defer { conn.close() }
        #expect(try await conn.send(["PING"]).string == "PONG")
        own.stop()
        await #expect(throws: RedisError.self) { try await conn.send(["PING"]) }
        // Same port, new server: the connection comes back by itself.
        let args = [TestRedis.redisServerPath, "--port", String(own.port), "--bind", "127.0.0.1", "--dir", own.dir, "--save", "", "--appendonly", "no"]
        let again = try ChildProcess(args)
        defer { again.signal(SIGKILL) }
        try await eventually("reconnect after restart") { (try? await conn.send(["PING"]))?.string == "PONG" }
    }

    @Test func blockingCommandIsInterruptedByCancellation() async throws {
        let conn = RedisBlockingConnection(configuration: redis.configuration)
        defer { conn.close() }
        let start = ContinuousClock.now
        let task = Task { try await conn.send(["BLPOP", "rc:never:\(UUID().uuidString)", "30"]) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ContinuousClock.now - start < .seconds(10))
        // The connection is usable again afterwards.
        let key = "rc:\(UUID().uuidString)"
        let plain = RedisConnection(configuration: redis.configuration)
        defer { plain.close() }
        try await plain.send(["RPUSH", key, "x"])
        #expect(try await conn.send(["BLPOP", key, "5"]).array.last?.string == "x")
    }
}

extension RedisClientTests {
    @Test func commandTimeoutFailsASilentServer() async throws {
        let own = try TestRedis()
        defer { own.stop() }
        var config = own.configuration
        config.commandTimeout = .milliseconds(300)
        let conn = RedisConnection(configuration: config)
        defer { conn.close() }
        #expect(try await conn.send(["PING"]).string == "PONG")
        own.server.process.signal(SIGSTOP)  // the server accepts nothing and answers nothing
        defer { own.server.process.signal(SIGCONT) }
        let start = ContinuousClock.now
        do {
            try await conn.send(["PING"])
            Issue.record("expected a timeout")
        } catch let e as RedisError {
            #expect(e.code == .connectionLost && e.message.contains("no reply within 300ms"), "\(e.message)")
            #expect(e.message.contains("127.0.0.1:\(own.port)") && e.message.contains("PING"))
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        own.server.process.signal(SIGCONT)
        try await eventually("answers again") { (try? await conn.send(["PING"]))?.string == "PONG" }
    }

    @Test func connectsOverAUnixSocket() async throws {
        let dir = NSTemporaryDirectory() + "kiln-sock-\(UUID().uuidString.prefix(8))"
        let own = try TestRedis(extraArgs: ["--unixsocket", "\(dir)/redis.sock", "--unixsocketperm", "700"], dir: dir)
        defer { own.server.stop() }
        let conn = RedisConnection(configuration: try RedisConfiguration(url: "unix://\(dir)/redis.sock?db=3"))
        defer { conn.close() }
        try await conn.send(["SET", "via-socket", "1"])
        let tcp = RedisConnection(configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(own.port)/3"))
        defer { tcp.close() }
        #expect(try await tcp.send(["GET", "via-socket"]).string == "1")  // same server, same db 3
    }
}
