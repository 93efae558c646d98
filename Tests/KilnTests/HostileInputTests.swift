import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad input found by a hostile probe (issue 10, item 5): records written by other producers with
/// out-of-range numbers, BOMs, CRLF batch files, invalid UTF-8, control characters, hostile flag
/// and environment values, and a waiter whose Redis restarts. Nothing may be half-written, every
/// error is one precise line with exit 2, and every `--json` line parses.
@Suite(.serialized) struct HostileInputTests {
    let redis = TestRedis.shared

    func freshCLI() -> KilnCLI { KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix()) }

    // MARK: records with out-of-range numbers

    @Test func outOfRangeRecordNumbersEndMalformedEnvelopeAndWakeWaiters() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let bad: [(id: String, fields: [String: String])] = [
            ("ttl-huge", ["result_ttl_ms": "99999999999999999999999"]),
            ("ttl-negative", ["result_ttl_ms": "-5"]),
            ("ttl-text", ["result_ttl_ms": "abc"]),
            ("ttl-zero-padded", ["result_ttl_ms": "0060000"]),
            ("timeout-huge", ["timeout_ms": "99999999999999999999"]),
            ("timeout-fraction", ["timeout_ms": "1.5"]),
            ("max-negative", ["max_attempts": "-1"]),
            ("max-text", ["max_attempts": "many"]),
            ("attempts-text", ["attempts": "x"]),
            ("token-text", ["token": "t"]),
        ]
        for job in bad {
            try await HostileRecords.put(client, id: job.id, type: "sleep", payload: #"{"ms":1500}"#, overrides: job.fields)
        }
        // A waiter on the job whose TTL made finish_many fail after it wrote `succeeded`.
        let waiter = try ChildProcess([KilnBinary.path, "result", "ttl-huge", "--wait", "--timeout", "20s", "--json"],
                                      environment: cli.environment)
        let worker = try await cli.startWorker(["--processes", "0", "--lease", "2s", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        let started = ContinuousClock.now
        for job in bad {
            try await eventually("\(job.id) did not end") {
                (try? await client.record(job.id, queue: "default"))?.isFinal == true
            }
            let r = try await client.record(job.id, queue: "default")
            #expect(r.statusText == "failed" && r.error?.type == "malformed_envelope", "\(job.id): \(r.json)")
            try await HostileRecords.expectFinalAndExpiring(client, id: job.id, status: "failed")
        }
        let code = try await waiter.wait(timeout: .seconds(15))
        #expect(code == 4, "waiter: exit \(code) \(waiter.stderr)")
        #expect(ContinuousClock.now - started < .seconds(8), "the waiter was not woken promptly")
        #expect(waiter.stdout.contains("malformed_envelope"), "\(waiter.stdout)")
        // The worker keeps running other jobs, and did not take the bad records for an outage.
        let ok = try await cli.run("enqueue", "echo", #""still here""#, "--wait", "--wait-timeout", "20s")
        #expect(ok.code == 0 && ok.line == #""still here""#, "\(ok.stderr)")
        #expect(!worker.stderr.contains("retrying until Redis is back"), "\(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("newer attempt owns it"), "\(worker.stderr.suffix(2000))")
        try await cli.stop(worker)
    }

    @Test func recordChangedWhileRunningIsNeverHalfFinished() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let worker = try await cli.startWorker(["--processes", "0", "--lease", "2s", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        let job = try await client.enqueue("sleep", json: #"{"ms":1500}"#)
        try await eventually("running") { try await job.status() == .running }
        // Another producer rewrites the TTL while the attempt runs.
        try await client.connection.send(["HSET", client.store.keys.job("default", job.id), "result_ttl_ms", "99999999999999999999999"])
        let r = try await job.wait(timeout: .seconds(10))
        #expect(r.statusText == "failed" && r.error?.type == "malformed_envelope", "\(r.json)")
        try await HostileRecords.expectFinalAndExpiring(client, id: job.id, status: "failed")
        #expect(!worker.stderr.contains("retrying until Redis is back"), "\(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("newer attempt owns it"), "\(worker.stderr.suffix(2000))")
        try await cli.stop(worker)
    }

    @Test func everyScriptValidatesBeforeItWrites() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys, q = "default", qp = client.store.keys.queuePrefix("default")
        let now = String(Int64(Date().timeIntervalSince1970 * 1000))
        let hugeTTL = ["result_ttl_ms": "99999999999999999999999"]

        // cancel of a queued job whose TTL is out of range: cancelled, and it expires.
        try await HostileRecords.put(client, id: "c1", type: "echo", payload: "1", overrides: hugeTTL)
        #expect(try await client.store.cancel(queue: q, id: "c1", now: Int64(now)!) == .cancelled)
        try await HostileRecords.expectFinalAndExpiring(client, id: "c1", status: "cancelled")

        // release of a running job whose attempts is not a number: ended, lease gone.
        try await client.connection.send(["HSET", k.job(q, "r1"), "id", "r1", "type", "echo", "kind", "io", "status", "running",
                                          "attempts", "x", "max_attempts", "4", "token", "7", "timeout_ms", "1000", "payload", "1"])
        try await client.connection.send(["ZADD", k.running(q), "99999999999999", "r1"])
        #expect(try await client.store.release(queue: q, id: "r1", token: "7", to: .io, now: Int64(now)!) == .failed)
        #expect(try await client.record("r1", queue: q).error?.type == "malformed_envelope")
        try await HostileRecords.expectFinalAndExpiring(client, id: "r1", status: "failed")
        #expect(try await client.connection.send(["LLEN", k.pending(q, .io)]).int == 0)

        // reap of an expired lease of a job out of attempts whose TTL is out of range.
        try await client.connection.send(["HSET", k.job(q, "p1"), "id", "p1", "type", "echo", "kind", "io", "status", "running",
                                          "attempts", "4", "max_attempts", "4", "token", "4", "timeout_ms", "1000", "payload", "1",
                                          "result_ttl_ms", "99999999999999999999"])
        try await client.connection.send(["ZADD", k.running(q), "1", "p1"])
        _ = try await client.store.reap(queue: q, now: Int64(now)!, limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(try await client.record("p1", queue: q).error?.type == "malformed_envelope")
        try await HostileRecords.expectFinalAndExpiring(client, id: "p1", status: "failed")

        // enqueue and enqueue_many refuse out-of-range numbers and write nothing.
        await #expect(throws: (any Error).self) {
            _ = try await client.store.run(KilnScripts.enqueue, keys: [k.job(q, "e1"), k.pending(q, .io)],
                                             args: ["e1", "echo", q, "io", "1", "4", "1000", "-1", now])
        }
        await #expect(throws: (any Error).self) {
            _ = try await client.store.run(KilnScripts.enqueueMany, keys: [k.pending(q, .io), k.pending(q, .cpu)],
                                             args: [qp, q, now, "e2", "echo", "io", "1", "4", "1000", "60000",
                                                    "e3", "echo", "io", "1", "4", "1000", "99999999999999999999"])
        }
        for id in ["e1", "e2", "e3"] {
            #expect(try await client.connection.send(["EXISTS", k.job(q, id)]).int == 0, "\(id) was written")
        }
        #expect(try await client.connection.send(["LLEN", k.pending(q, .io)]).int == 0)
    }

    // MARK: payload and batch files

    @Test func payloadFileWithBOMIsStrippedAndEveryJSONLineParses() async throws {
        let cli = freshCLI()
        let path = try HostileRecords.file([0xEF, 0xBB, 0xBF] + Array(#"{"a":1}"#.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try await cli.run("enqueue", "noop", "@" + path)
        #expect(r.code == 0, "\(r.stderr)")
        let status = try await cli.run("status", r.line, "--json")
        let record = try HostileRecords.parseEachLine(status.stdout)
        #expect((record.first?["payload"] as? [String: Any])?["a"] as? Int == 1, "\(status.stdout)")

        // A batch file that starts with a BOM.
        let batch = try HostileRecords.file([0xEF, 0xBB, 0xBF] + Array("{\"type\":\"noop\"}\n".utf8))
        defer { try? FileManager.default.removeItem(atPath: batch) }
        let b = try await cli.run("enqueue", "--batch", batch)
        #expect(b.code == 0 && b.stdout.split(separator: "\n").count == 1, "\(b.stderr)")

        // A record another producer wrote with a BOM in its payload still prints as valid JSON.
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        try await HostileRecords.put(client, id: "bom", type: "noop", payload: "\u{FEFF}{\"a\":1}", overrides: [:])
        let other = try await cli.run("status", "bom", "--json")
        #expect(other.code == 0)
        _ = try HostileRecords.parseEachLine(other.stdout)
    }

    @Test func recordJSONIsOneValidLineWhateverOthersStored() throws {
        for payload in ["{\n  \"a\": 1\r\n}", "\u{FEFF}{}", "\"\\ud800\"", "[1,\r2]", "not json\n"] {
            let hash = RedisValue.array(["id", "x", "type", "t\u{1B}", "payload", payload, "result", payload, "status", "succeeded"].map { .bulk($0) })
            let json = try #require(JobRecord(hash: hash, queue: "q")).json
            #expect(!json.utf8.contains(0x0A) && !json.utf8.contains(0x0D), "\(json.debugDescription)")
            _ = try HostileRecords.parseEachLine(json)
        }
    }

    @Test func batchFilesWithCRLFLineEndsAreAccepted() async throws {
        let cli = freshCLI()
        let path = try HostileRecords.file(Array("{\"type\":\"noop\"}\r\n{\"type\":\"echo\",\"payload\":1}\r\n\r\n{\"type\":\"noop\"}".utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try await cli.run("enqueue", "--batch", path)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 3, "\(r.stdout)")
        let bad = try HostileRecords.file(Array("{\"type\":\"noop\"}\r\n{\"type\":\"noop\",\"retries\":-1}\r\n".utf8))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let b = try await cli.run("enqueue", "--batch", bad)
        #expect(b.code == 2 && b.stderr.contains("batch line 2"), "\(b.stderr)")
    }

    @Test func invalidUTF8IsRejectedNeverReplaced() async throws {
        let cli = freshCLI()
        let payload = try HostileRecords.file(Array(#"{"a":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8))
        let batch = try HostileRecords.file(Array(#"{"type":"a"#.utf8) + [0xC3] + Array(#"b"}"#.utf8) + [0x0A])
        defer {
            try? FileManager.default.removeItem(atPath: payload)
            try? FileManager.default.removeItem(atPath: batch)
        }
        let results = [
            try await cli.run("enqueue", "noop", "@" + payload),
            try await cli.run("enqueue", "--batch", batch),
            // The type as an argument, and the payload on stdin, with bytes that are not UTF-8.
            try await HostileRecords.shell(cli, #"exec "$KILN" enqueue "$(printf 'a\377b')" null"#),
            try await HostileRecords.shell(cli, #"printf '"\377"' | exec "$KILN" enqueue noop -"#),
        ]
        for r in results {
            #expect(r.code == 2, "exit \(r.code): \(r.stderr)")
            #expect(r.stderr.contains("UTF-8"), "\(r.stderr)")
            HostileRecords.expectOneLine(r)
        }
        #expect(results[1].stderr.contains("batch line 1"), "\(results[1].stderr)")
        #expect(try await HostileRecords.keys(redis, cli.prefix).isEmpty, "something was written")
    }

    // MARK: control characters

    @Test func controlCharactersInTypesAndNamesAreRejectedAndEscaped() async throws {
        let cli = freshCLI()
        for type in ["a\u{1B}[31mred", "two\nlines", "a\u{01}b", "a\u{7F}b", "a\u{9B}b"] {
            let r = try await cli.run("enqueue", type, "null")
            #expect(r.code == 2, "\(type.debugDescription): exit \(r.code) \(r.stderr)")
            HostileRecords.expectOneLine(r)
        }
        let batch = try HostileRecords.file(Array(#"{"type":"x\u001b[2Jy"}"#.utf8) + [0x0A])
        defer { try? FileManager.default.removeItem(atPath: batch) }
        let b = try await cli.run("enqueue", "--batch", batch)
        #expect(b.code == 2 && b.stderr.contains("batch line 1"), "\(b.stderr)")
        HostileRecords.expectOneLine(b)
        let named = try await cli.run("worker", "--name", "w\u{1B}[2Jx")
        #expect(named.code == 2, "\(named.stderr)")
        HostileRecords.expectOneLine(named)
        let id = try await cli.run("status", "x\u{1B}y")
        #expect(id.code == 2)
        HostileRecords.expectOneLine(id)
        #expect(try await HostileRecords.keys(redis, cli.prefix).isEmpty, "something was written")
    }

    @Test func workerAndDeadListEscapeControlCharactersFromOtherProducers() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let evil = "evil\u{1B}[2J\u{1B}[31m\nsecond\u{01}line"
        try await HostileRecords.put(client, id: "ctl", type: evil, payload: "null", overrides: ["max_attempts": "2"])
        let worker = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        try await eventually("the job did not end") { (try? await client.record("ctl", queue: "default"))?.isFinal == true }
        #expect(try await client.record("ctl", queue: "default").error?.type == "unknown_type")
        let dead = try await cli.run("dead")
        #expect(dead.code == 0)
        #expect(!dead.stdout.utf8.contains(0x1B) && !dead.stdout.utf8.contains(0x01), "\(dead.stdout.debugDescription)")
        #expect(dead.stdout.split(separator: "\n").count == 1, "\(dead.stdout.debugDescription)")
        let json = try await cli.run("dead", "--json")
        #expect(try HostileRecords.parseEachLine(json.stdout).first?["type"] as? String == evil)
        let result = try await cli.run("result", "ctl")
        #expect(result.code == 4)
        #expect(!result.stderr.utf8.contains(0x1B), "\(result.stderr.debugDescription)")
        HostileRecords.expectOneLine(result)
        try await cli.stop(worker)
        #expect(!worker.stderr.utf8.contains(0x1B) && !worker.stderr.utf8.contains(0x01), "\(worker.stderr.suffix(2000).debugDescription)")
        #expect(!worker.stderr.contains("\nsecond"), "\(worker.stderr.suffix(2000).debugDescription)")
    }
}
