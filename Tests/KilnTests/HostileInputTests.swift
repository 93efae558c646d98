import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad input found by a hostile probe (issue 10, item 5): records written by other producers with
/// out-of-range numbers, wrong types, nil holes or no MessagePack at all (protocol v3), BOMs, CRLF batch files, invalid UTF-8, control characters, hostile flag
/// and environment values, and a waiter whose Redis restarts. Nothing may be half-written, every
/// error is one precise line with exit 2, and every `--json` line parses.
@Suite(.serialized) struct HostileInputTests {
    let redis = TestRedis.shared

    func freshCLI() -> KilnCLI { KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix()) }

    // MARK: records another producer wrote

    /// One hostile record: fields of a `RawRecord` changed, or bytes that are no record at all.
    enum Hostile: Sendable {
        case fields(@Sendable (inout RawRecord) -> Void)
        /// Raw bytes as the record.
        case bytes(String)
        /// A Lua expression evaluated in Redis as the record (`RawRecord.putPacked`).
        case lua(String)
    }

    /// Records on the ready list that the fetch script (or, for the payload, the worker) cannot
    /// use: out-of-range numbers, strings where numbers belong, nil holes, wrong shapes. Each
    /// must end `failed` with `malformed_envelope`, indexed for expiry with the default TTL,
    /// announced so that waiters wake, and leave the worker running.
    static let hostileRecords: [(id: String, record: Hostile)] = [
        ("ttl-huge", .fields { $0.resultTTLms = .float(1e23) }),
        ("ttl-negative", .fields { $0.resultTTLms = .int(-5) }),
        ("ttl-text", .fields { $0.resultTTLms = .str("abc") }),
        ("ttl-zero-padded", .fields { $0.resultTTLms = .str("0060000") }),  // a string where a number belongs
        ("ttl-over-10-years", .fields { $0.resultTTLms = .int(315_360_000_001) }),
        ("timeout-huge", .fields { $0.timeoutMs = .float(1e20) }),
        ("timeout-fraction", .fields { $0.timeoutMs = .float(1.5) }),
        ("timeout-zero", .fields { $0.timeoutMs = .int(0) }),
        ("max-negative", .fields { $0.maxAttempts = .int(-1) }),
        ("max-text", .fields { $0.maxAttempts = .str("many") }),
        ("max-over", .fields { $0.maxAttempts = .int(1002) }),
        ("attempts-text", .fields { $0.attempts = .str("x") }),
        ("attempts-negative", .fields { $0.attempts = .int(-1) }),
        ("token-text", .fields { $0.token = .str("t") }),
        ("token-fraction", .fields { $0.token = .float(0.5) }),
        ("type-hole", .fields { $0.type = .nilValue }),  // a nil hole: packed as a map of positions
        ("type-number", .fields { $0.type = .int(5) }),
        ("type-empty", .fields { $0.type = .str("") }),
        ("kind-gpu", .fields { $0.kind = .str("gpu") }),
        ("kind-hole", .fields { $0.kind = .nilValue }),
        ("payload-number", .fields { $0.payload = .int(1) }),
        ("payload-not-json", .fields { $0.payload = .str("{oops") }),  // the worker's check, not the script's
        // Bytes that are not UTF-8 (the worker's check): never run with U+FFFD in their place.
        ("payload-not-utf8", .lua(#"cmsgpack.pack({3, 1, 'echo', 'io', '"\255\254"', 0, 1, 0, 1000, 60000, 0, 0, 0, 0, '', '', '', '', 0, 0})"#)),
        ("type-not-utf8", .lua(#"cmsgpack.pack({3, 1, 'echo\255', 'io', '1', 0, 1, 0, 1000, 60000, 0, 0, 0, 0, '', '', '', '', 0, 0})"#)),
        ("format-4", .fields { $0.format = .int(4) }),
        ("format-text", .fields { $0.format = .str("3") }),
        ("status-text", .fields { $0.status = .str("queued") }),
        ("status-9", .fields { $0.status = .int(9) }),
        ("not-msgpack", .bytes("this is not MessagePack")),
        ("empty", .bytes("")),
        ("two-fields", .lua("cmsgpack.pack({3, 1})")),
        ("map", .lua("cmsgpack.pack({format = 3, status = 1, type = 'sleep', kind = 'io', payload = '{}'})")),
        ("truncated", .lua("string.sub(cmsgpack.pack({3, 1, 'sleep', 'io', '{}', 0, 1, 0, 1000, 60000, 0, 0, 0, 0, '', '', '', '', 0, 0}), 1, 12)")),
        ("deep", .lua("string.rep(string.char(0x91), 200000) .. string.char(1)")),
    ]

    static func put(_ client: KilnClient, id: String, _ record: Hostile) async throws {
        switch record {
        case .fields(let change):
            try await HostileRecords.put(client, id: id, type: "sleep", payload: #"{"ms":1500}"#, change)
        case .bytes(let b):
            try await RawRecord.putBytes(client.store, queue: HostileRecords.queue, id: id, b, ready: .io)
        case .lua(let expr):
            try await RawRecord.putPacked(client.store, queue: HostileRecords.queue, id: id, lua: expr, ready: .io)
        }
    }

    @Test func hostileRecordsEndMalformedEnvelopeAndWakeWaiters() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        for job in Self.hostileRecords { try await Self.put(client, id: job.id, job.record) }
        // A record at the edge of the ranges is fine: the largest result TTL (10 years).
        try await HostileRecords.put(client, id: "ttl-10-years", type: "echo", payload: "1") { $0.resultTTLms = .int(315_360_000_000) }
        // A waiter on one of them, started before any worker runs.
        let waiter = try ChildProcess([KilnBinary.path, "result", "ttl-huge", "--wait", "--timeout", "20s", "--json"],
                                      environment: cli.environment)
        try await eventually("the waiter subscribed") { try await HostileRecords.waitingClients(redis, prefix: cli.prefix) >= 1 }
        let worker = try await cli.startWorker(["--processes", "0", "--lease", "2s", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        let started = ContinuousClock.now
        for job in Self.hostileRecords {
            try await eventually("\(job.id) did not end") {
                (try? await client.store.record(queue: HostileRecords.queue, id: job.id))?.isFinal == true
            }
            let r = try #require(try await client.store.record(queue: HostileRecords.queue, id: job.id))
            #expect(r.statusText == "failed" && r.error?.type == "malformed_envelope", "\(job.id): \(r.json)")
            #expect(JSONText.isValid(r.json) && !r.json.contains("\n"), "\(job.id): \(r.json)")
            if job.id.hasSuffix("not-utf8") {
                #expect(r.error?.message.contains("is not valid UTF-8") == true && r.result == nil, "\(job.id): \(r.json)")
            }
            try await HostileRecords.expectFinalAndExpiring(client, id: job.id, status: "failed")
        }
        let edge = try await client.wait("ttl-10-years", queue: HostileRecords.queue, timeout: .seconds(20))
        #expect(edge.statusText == "succeeded" && edge.result == "1", "\(edge.json)")
        try await HostileRecords.expectFinalAndExpiring(client, id: "ttl-10-years", status: "succeeded", ttlMs: 315_360_000_000)

        let code = try await waiter.wait(timeout: .seconds(15))
        #expect(code == 4, "waiter: exit \(code) \(waiter.stderr)")
        #expect(ContinuousClock.now - started < .seconds(8), "the waiter was not woken promptly")
        #expect(waiter.stdout.contains("malformed_envelope"), "\(waiter.stdout)")
        // Nothing half-written: no id left on a ready list, a lease or a retry.
        let k = client.store.keys, q = HostileRecords.queue
        for key in [k.ready(q, .io), k.ready(q, .cpu)] { #expect(try await client.connection.send(["LLEN", key]).int == 0, "\(key)") }
        for key in [k.leases(q), k.later(q), k.dead(q)] { #expect(try await client.connection.send(["ZCARD", key]).int == 0, "\(key)") }
        // The worker keeps running other jobs, and did not take the bad records for an outage.
        let ok = try await cli.run("enqueue", "echo", #""still here""#, "--wait", "--wait-timeout", "20s")
        #expect(ok.code == 0 && ok.line == #""still here""#, "\(ok.stderr)")
        #expect(worker.poll() == nil, "the worker exited: \(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("retrying until Redis is back"), "\(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("newer attempt owns it"), "\(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("user_script"), "a script error: \(worker.stderr.suffix(2000))")
        try await cli.stop(worker)
    }

    @Test func recordChangedWhileRunningIsNeverHalfFinished() async throws {
        let cli = freshCLI()
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let worker = try await cli.startWorker(["--processes", "0", "--lease", "2s", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        // Another producer rewrites fields of the record while the attempt runs: the TTL, the
        // attempt count, the maximum. The finish finds them and fails the job as malformed.
        let changes: [(Int, RawRecord.RawValue)] = [(10, .float(1e20)), (6, .str("x")), (7, .nilValue)]
        for (position, value) in changes {
            let job = try await client.enqueue("sleep", json: #"{"ms":1500}"#)
            try await eventually("running") { try await job.status() == .running }
            try await RawRecord.patch(client.store, id: job.id, [position: value])
            let r = try await job.wait(timeout: .seconds(10))
            #expect(r.statusText == "failed" && r.error?.type == "malformed_envelope", "position \(position): \(r.json)")
            try await HostileRecords.expectFinalAndExpiring(client, id: job.id, status: "failed")
        }
        #expect(!worker.stderr.contains("retrying until Redis is back"), "\(worker.stderr.suffix(2000))")
        #expect(!worker.stderr.contains("newer attempt owns it"), "\(worker.stderr.suffix(2000))")
        // The record replaced by bytes that are no record at all: whichever script meets it first
        // (the heartbeat's extend stops the attempt, the finish or the reaper finalizes it) ends it.
        let job = try await client.enqueue("sleep", json: #"{"ms":1500}"#)
        try await eventually("running") { try await job.status() == .running }
        try await client.connection.send(["HSET", client.store.keys.jobs(HostileRecords.queue), job.id, "garbage"])
        let r = try await job.wait(timeout: .seconds(15))
        #expect(r.statusText == "failed" && r.error?.type == "malformed_envelope", "\(r.json)")
        try await eventually("the garbage record was finalized") { try await HostileRecords.expiryScore(client, id: job.id) != nil }
        try await HostileRecords.expectFinalAndExpiring(client, id: job.id, status: "failed")
        #expect(worker.poll() == nil, "the worker exited: \(worker.stderr.suffix(2000))")
        try await cli.stop(worker)
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
        try await HostileRecords.put(client, id: "bom", type: "noop", payload: "\u{FEFF}{\"a\":1}")
        let other = try await cli.run("status", "bom", "--json")
        #expect(other.code == 0)
        _ = try HostileRecords.parseEachLine(other.stdout)
    }

    static let oddPayloads = ["{\n  \"a\": 1\r\n}", "\u{FEFF}{}", "\"\\ud800\"", "[1,\r2]", "not json\n"]

    @Test func recordJSONIsOneValidLineWhateverOthersStored() async throws {
        // As the get script hands a record out (field, value pairs, all text), with odd values.
        for payload in Self.oddPayloads {
            let fields = RedisValue.array(["type", "t\u{1B}", "payload", payload, "result", payload, "status", "succeeded",
                                           "attempts", "nil", "timeout_ms", "1e+14", "enqueued_at", "1.5"].map { .bulk($0) })
            let json = try #require(JobRecord(fields: fields, id: "x", queue: "q")).json
            #expect(!json.utf8.contains(0x0A) && !json.utf8.contains(0x0D), "\(json.debugDescription)")
            _ = try HostileRecords.parseEachLine(json)
        }
        // The same, stored by another producer and read back through Redis.
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        for (i, payload) in Self.oddPayloads.enumerated() {
            try await HostileRecords.put(client, id: "odd-\(i)", type: "t\u{1B}", payload: payload, ready: nil) {
                $0.status = RawRecord.status("succeeded"); $0.result = .str(payload); $0.timeoutMs = .float(1e14); $0.attempts = .nilValue
            }
        }
        for (i, r) in try await client.store.records(queue: HostileRecords.queue, ids: Self.oddPayloads.indices.map { "odd-\($0)" }).enumerated() {
            let json = try #require(r, "odd-\(i) not found").json
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
        try await HostileRecords.put(client, id: "ctl", type: evil, payload: "null") { $0.maxAttempts = .int(2) }
        let worker = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        try await eventually("the job did not end") { (try? await client.record("ctl", queue: "default"))?.isFinal == true }
        #expect(try await client.record("ctl", queue: "default").error?.type == "unknown_type")
        try await HostileRecords.expectFinalAndExpiring(client, id: "ctl", status: "dead")
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
