import Foundation
import Kiln
import KilnRedis
import Testing

/// `kiln enqueue --batch FILE --wait` and `kiln result ID ID… --wait`: one line per job in input
/// order, exit codes, and a handful of connections however many jobs are waited on.
@Suite struct WaitAllTests {
    let redis = TestRedis.shared

    func freshCLI() -> KilnCLI { KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix()) }

    func connectedClients(_ conn: RedisConnection) async throws -> Int {
        let info = try await conn.send(["INFO", "clients"]).string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_clients:") }
        return Int(line?.split(separator: ":").last ?? "") ?? -1
    }

    @Test func batchWaitPrintsOneResultPerLineInInputOrder() async throws {
        let cli = freshCLI()
        let worker = try await cli.startWorker(["--concurrency", "50"])
        defer { worker.signal(SIGKILL) }
        var lines = (0..<300).map { #"{"type":"echo","payload":{"i":\#($0)}}"# }
        lines.insert(#"{"type":"fail","payload":{"message":"number 150 fails"},"retries":0}"#, at: 150)
        let r = try await cli.run(["enqueue", "--batch", "-", "--wait", "--wait-timeout", "60s"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(r.code == 4, "stderr: \(r.stderr)")
        let out = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(out.count == 301)
        for (i, line) in out.enumerated() {
            if i == 150 { #expect(line == "null"); continue }
            #expect(line == #"{"i":\#(i < 150 ? i : i - 1)}"#)
        }
        #expect(r.stderr.contains("ended failed: number 150 fails"))
        #expect(r.stderr.contains("1 of 301 jobs ended without success"))

        // --json: the whole record per line, still in order.
        let j = try await cli.run(["enqueue", "--batch", "-", "--wait", "--json"], stdin: lines.prefix(3).joined(separator: "\n"))
        #expect(j.code == 0, "stderr: \(j.stderr)")
        let records = try HostileRecords.parseEachLine(j.stdout)
        #expect(records.count == 3)
        #expect(records.map { ($0["payload"] as? [String: Any])?["i"] as? Int } == [0, 1, 2])
        #expect(records.allSatisfy { $0["status"] as? String == "succeeded" })
    }

    @Test func resultOfManyIdsWaitsOverAHandfulOfConnections() async throws {
        let own = try TestRedis()  // its own server: other tests' connections would blur the count
        defer { own.stop() }
        let cli = KilnCLI(redis: own, prefix: TestRedis.uniquePrefix())
        let client = try own.client(prefix: cli.prefix)
        defer { client.close() }
        let conn = RedisConnection(configuration: own.configuration)
        defer { conn.close() }
        let ids = try await client.enqueueBatch((0..<2000).map { EnqueueRequest(type: "echo", payload: "[\($0)]") })
        let before = try await connectedClients(conn)
        let waiter = try ChildProcess([KilnBinary.path, "result", "--wait", "--timeout", "120s", "--queue", "default"] + ids,
                                      environment: cli.environment)
        defer { waiter.signal(SIGKILL) }
        let channel = "\(cli.prefix):{default}:done"
        try await eventually("kiln result subscribed to \(channel)") {
            if waiter.poll() != nil { throw TestFailure("kiln result exited early: \(waiter.output.suffix(800))") }
            return try await conn.send(["PUBSUB", "NUMSUB", channel]).array.last?.int ?? 0 >= 1
        }
        let during = try await connectedClients(conn)
        #expect(during - before <= 4, "kiln result waiting on 2000 jobs holds \(during - before) connections")
        let worker = try await cli.startWorker(["--concurrency", "100"])
        defer { worker.signal(SIGKILL) }
        let code = try await waiter.wait(timeout: .seconds(120))
        #expect(code == 0, "stderr: \(waiter.stderr.suffix(800))")
        let out = waiter.stdout.split(separator: "\n")
        #expect(out.count == 2000)
        #expect(out.enumerated().allSatisfy { i, line in line == "[\(i)]" })
    }

    @Test func resultOfManyIdsWithoutWaitSaysWhatIsMissingAndUnfinished() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let queued = try await client.enqueue("echo", json: "1").id
        let r = try await cli.run("result", queued, "01NOSUCHJOB0000000000000000")
        #expect(r.code == 5, "stderr: \(r.stderr)")
        #expect(r.stdout == "null\nnull\n")
        #expect(r.stderr.contains("job \(queued) has not finished (status: queued)"))
        #expect(r.stderr.contains("no job with id 01NOSUCHJOB0000000000000000"))
        // Only unfinished: exit 3. A short --wait on a job nobody runs ends the same way.
        let u = try await cli.run("result", queued, queued, "--wait", "--timeout", "200ms")
        #expect(u.code == 3, "stderr: \(u.stderr)")
        #expect(u.stdout == "null\nnull\n")
        // Bad ids are refused before anything else, one line, exit 2.
        let bad = try await cli.run("result", queued, "bad id{")
        #expect(bad.code == 2)
        #expect(bad.stderr.split(separator: "\n").count == 1)
    }
}

extension WaitAllTests {
    /// A user that may not subscribe gets one clear line at once, not a wait into the deadline.
    @Test func refusedSubscriptionFailsAtOnceWithOneLine() async throws {
        let own = try TestRedis()
        defer { own.stop() }
        let admin = RedisConnection(configuration: own.configuration)
        defer { admin.close() }
        _ = try await admin.send(["ACL", "SETUSER", "nosub", "on", ">nosub-pw", "~*", "&*", "+@all", "-subscribe"])
        let prefix = TestRedis.uniquePrefix()
        let client = try own.client(prefix: prefix)
        defer { client.close() }
        let a = try await client.enqueue("echo", json: "1").id
        let b = try await client.enqueue("echo", json: "2").id
        let env = ["KILN_REDIS_URL": "redis://nosub:nosub-pw@127.0.0.1:\(own.port)/0", "KILN_PREFIX": prefix]
        let started = ContinuousClock.now
        let p = try ChildProcess([KilnBinary.path, "result", a, b, "--wait", "--timeout", "60s"], environment: env)
        let code = try await p.wait(timeout: .seconds(50))
        #expect(code == 1, "stderr: \(p.stderr)")
        #expect(ContinuousClock.now - started < .seconds(30))
        let lines = p.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("SUBSCRIBE") && lines[0].contains("NOPERM"), "stderr: \(p.stderr)")
        #expect(!p.stderr.contains("nosub-pw"))
    }
}

extension WaitAllTests {
    /// Redis gone for good: the wait ends at its timeout with one line naming Redis (exit 1),
    /// not with jobs reported as unfinished.
    @Test func redisGoneDuringAWaitForManyIsReportedAsSuch() async throws {
        let own = try TestRedis()
        defer { own.stop() }
        let cli = KilnCLI(redis: own, prefix: TestRedis.uniquePrefix())
        let client = try own.client(prefix: cli.prefix)
        defer { client.close() }
        let conn = RedisConnection(configuration: own.configuration)
        defer { conn.close() }
        let a = try await client.enqueue("echo", json: "1").id
        let b = try await client.enqueue("echo", json: "2").id
        let started = ContinuousClock.now
        let p = try ChildProcess([KilnBinary.path, "result", a, b, "--wait", "--timeout", "3s"], environment: cli.environment)
        try await eventually("subscribed") {
            try await conn.send(["PUBSUB", "NUMSUB", "\(cli.prefix):{default}:done"]).array.last?.int ?? 0 >= 1
        }
        own.stop()
        let code = try await p.wait(timeout: .seconds(30))
        #expect(code == 1, "stderr: \(p.stderr)")
        #expect(ContinuousClock.now - started >= .milliseconds(2950))
        let lines = p.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("unreachable") && lines[0].contains("\(own.port)"), "stderr: \(p.stderr)")
        #expect(p.stdout.isEmpty)
    }
}
