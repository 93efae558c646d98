import Foundation
import Kiln
import KilnRedis
import Testing

/// `HostileInputTests`, continued: every v3 script against records it cannot use, called
/// directly through the store (no worker), checking that each validates before its first write.
extension HostileInputTests {
    var q: String { HostileRecords.queue }
    func nowMs() -> Int64 { HostileRecords.nowMs() }

    func rawRecord(_ client: KilnClient, _ id: String) async throws -> String? {
        try await client.connection.send(["HGET", client.store.keys.jobs(q), id]).string
    }

    @Test func everyScriptValidatesBeforeItWrites() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store, k = store.keys
        let now = nowMs()

        // cancel of a queued job whose TTL is out of range: cancelled, off its ready list, and it
        // expires with the default TTL.
        try await HostileRecords.put(client, id: "c1") { $0.resultTTLms = .float(1e23) }
        #expect(try await store.cancel(queue: q, id: "c1", now: now) == .cancelled)
        try await HostileRecords.expectFinalAndExpiring(client, id: "c1", status: "cancelled")
        // cancel of bytes that are no record: reported, nothing written.
        try await RawRecord.putBytes(store, queue: q, id: "c2", "garbage")
        #expect(try await store.cancel(queue: q, id: "c2", now: now) == .finished("failed"))
        #expect(try await rawRecord(client, "c2") == "garbage")

        // release of a running job whose attempts is not a number: ended, lease gone, not requeued.
        var running = RawRecord()
        running.status = RawRecord.status("running"); running.attempts = .str("x"); running.maxAttempts = .int(4); running.token = .int(7)
        try await running.put(store, queue: q, id: "r1", lease: 99_999_999_999_999)
        #expect(try await store.release(queue: q, id: "r1", token: "7", to: .io, now: now) == .failed)
        #expect(try await store.record(queue: q, id: "r1")?.error?.type == "malformed_envelope")
        try await HostileRecords.expectFinalAndExpiring(client, id: "r1", status: "failed")
        // release of garbage: stale (no such attempt), nothing written; its lease stays for the reaper.
        try await RawRecord.putBytes(store, queue: q, id: "r2", "garbage", lease: 99_999_999_999_999)
        #expect(try await store.release(queue: q, id: "r2", token: "1", to: .io, now: now) == .stale)
        #expect(try await rawRecord(client, "r2") == "garbage")
        try await client.connection.send(["ZREM", k.leases(q), "r2"])

        // finish of a running job whose max_attempts became text, and of one whose record became
        // garbage: both end failed (malformed_envelope), their leases gone.
        var f1 = RawRecord()
        f1.status = RawRecord.status("running"); f1.attempts = .int(1); f1.token = .int(3); f1.maxAttempts = .str("3")
        try await f1.put(store, queue: q, id: "f1", lease: 99_999_999_999_999)
        try await RawRecord.putPacked(store, queue: q, id: "f2", lua: "cmsgpack.pack({'3', 2})", lease: 99_999_999_999_999)
        let outcomes = [AttemptOutcome(id: "f1", token: "3", ending: .failed, errorType: "error", errorMessage: "x", retryDelayMs: 10, endedAt: now),
                        AttemptOutcome(id: "f2", token: "1", ending: .succeeded, result: "1", endedAt: now)]
        let finished = try await store.finish([(queue: q, attempts: outcomes[...])])
        #expect(try finished[0].get() == [.left(.failed), .left(.failed)])
        for id in ["f1", "f2"] {
            #expect(try await store.record(queue: q, id: id)?.error?.type == "malformed_envelope", "\(id)")
            try await HostileRecords.expectFinalAndExpiring(client, id: id, status: "failed")
        }

        // extend of garbage: the attempt is lost; nothing written.
        try await RawRecord.putBytes(store, queue: q, id: "x1", "garbage", lease: 99_999_999_999_999)
        let queue = q
        // On a thread of its own, as the heartbeat runs it.
        let verdicts: [String] = try await withCheckedThrowingContinuation { c in
            Thread {
                c.resume(with: Result {
                    try store.extendBlocking(queue: queue, jobs: [("x1", "1")], deadline: now + 60_000, lease: .seconds(30))
                        .map { "\($0.id):\($0.verdict.rawValue)" }
                })
            }.start()
        }
        #expect(verdicts == ["x1:lost"])
        #expect(try await rawRecord(client, "x1") == "garbage")
        try await client.connection.send(["ZREM", k.leases(q), "x1"])

        // reap of an expired lease of a job out of attempts whose TTL is out of range, and of an
        // expired lease on garbage: both failed, indexed for expiry.
        var p1 = RawRecord()
        p1.status = RawRecord.status("running"); p1.attempts = .int(4); p1.maxAttempts = .int(4); p1.token = .int(4)
        p1.resultTTLms = .float(1e20)
        try await p1.put(store, queue: q, id: "p1", lease: 1)
        try await RawRecord.putPacked(store, queue: q, id: "p2", lua: "cmsgpack.pack({format = 3, status = 2})", lease: 1)
        _ = try await store.reap(queue: q, now: nowMs(), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        for id in ["p1", "p2"] {
            #expect(try await store.record(queue: q, id: id)?.error?.type == "malformed_envelope", "\(id)")
            try await HostileRecords.expectFinalAndExpiring(client, id: id, status: "failed")
        }

        // retry_dead of a dead record it cannot use: refused, nothing written.
        var d1 = RawRecord()
        d1.status = RawRecord.status("dead"); d1.kind = .str("gpu"); d1.finishedAt = .int(now)
        try await d1.put(store, queue: q, id: "d1", dead: now)
        guard case .notRetryable(let why) = try await store.retryDead(queue: q, id: "d1", now: now) else {
            Issue.record("retry_dead took a record with kind gpu"); return
        }
        #expect(why.contains("malformed") && why.contains("kind"), "\(why)")
        #expect(try await store.record(queue: q, id: "d1")?.statusText == "dead")
        #expect(try await client.connection.send(["ZSCORE", k.dead(q), "d1"]).isNull == false)
        #expect(try await client.connection.send(["SISMEMBER", k.revived(q), "d1"]).int == 0)
        try await RawRecord.putBytes(store, queue: q, id: "d2", "garbage", dead: now)
        #expect(try await store.retryDead(queue: q, id: "d2", now: now) == .notRetryable("malformed"))
        #expect(try await rawRecord(client, "d2") == "garbage")

        // The sweep passes over all of it without error.
        #expect(try await store.sweepAll(queue: q, deadline: now + 60_000) == 0)

        // enqueue refuses out-of-range numbers and writes nothing, all or nothing per call.
        let t = String(now)
        let bad: [[String]] = [
            ["e1", "echo", "io", "1", "-1", "1000", "60000"],
            ["e2", "echo", "io", "1", "4", "1000", "99999999999999999999"],
            ["e3", "echo", "io", "1", "4", "1.5", "60000"],
            ["e4", "echo", "gpu", "1", "4", "1000", "60000"],
            ["e5", "echo", "io", "1", "0060", "1000", "60000"],
        ]
        for job in bad {
            await #expect(throws: (any Error).self, "\(job)") {
                _ = try await store.run(KilnScripts.enqueue, keys: [k.jobs(q), k.ready(q, .io), k.ready(q, .cpu)],
                                        args: [k.queuePrefix(q), t, "e0", "echo", "io", "1", "4", "1000", "60000"] + job)
            }
        }
        for id in ["e0"] + bad.map(\.[0]) {
            #expect(try await client.connection.send(["HEXISTS", k.jobs(q), id]).int == 0, "\(id) was written")
        }
        for kind in [JobKind.io, .cpu] { #expect(try await client.connection.send(["LLEN", k.ready(q, kind)]).int == 0) }
        #expect(try await client.connection.send(["ZCARD", k.leases(q)]).int == 0)
    }

    /// A producer that pushes an id twice must not get one job run twice at once: `fetch` pops
    /// both copies in one call and must lease the job once.
    @Test func anIdPushedTwiceIsLeasedOnce() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store
        try await HostileRecords.put(client, id: "twice")
        try await client.connection.send(["RPUSH", store.keys.ready(q, .io), "twice"])
        try await RawRecord.putBytes(store, queue: q, id: "garbage-twice", "garbage", ready: .io)
        try await client.connection.send(["RPUSH", store.keys.ready(q, .io), "garbage-twice"])
        let jobs = try await store.fetch(queue: q, kind: .io, max: 10, worker: "w", lease: .seconds(30), now: nowMs())
        #expect(jobs.map(\.id) == ["twice"], "\(jobs)")
        #expect(jobs.map(\.token) == ["1"])
        #expect(try await store.record(queue: q, id: "twice")?.attempts == 1)
        #expect(try await client.connection.send(["ZCARD", store.keys.leases(q)]).int == 1)
        try await HostileRecords.expectFinalAndExpiring(client, id: "garbage-twice", status: "failed")
        // Announced once, indexed once.
        let members = try await client.connection.send(["ZRANGE", store.keys.expiry(q), "0", "-1"]).array.compactMap(\.string)
        #expect(members == ["garbage-twice"], "\(members)")
    }

    /// Garbage where a retry waits (`Q:later`) is finalized when it comes due, not dropped from
    /// every index and left in `Q:jobs` for good.
    @Test func garbageWaitingToRetryIsFinalizedWhenDue() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store
        try await RawRecord.putBytes(store, queue: q, id: "g1", "garbage", later: 1)
        try await RawRecord.putPacked(store, queue: q, id: "g2", lua: "cmsgpack.pack({4, 3})", later: 1)
        let report = try await store.reap(queue: q, now: nowMs(), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(report.promoted == 0)
        for id in ["g1", "g2"] {
            #expect(try await store.record(queue: q, id: id)?.error?.type == "malformed_envelope", "\(id)")
            try await HostileRecords.expectFinalAndExpiring(client, id: id, status: "failed")
        }
    }

    /// A revived record (retried after it was final) whose `finished_at` another producer made
    /// text must not make every later `reap` of the queue fail: its expiry member comes due, and
    /// the record, final with no usable time, goes.
    @Test func aRevivedRecordWithoutAFinishTimeDoesNotStopTheReaper() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store, k = store.keys
        for (id, finished) in [("v1", RawRecord.RawValue.str("soon")), ("v2", .nilValue), ("v3", .float(1.5e300))] {
            var r = RawRecord()
            r.status = RawRecord.status("failed"); r.finishedAt = finished; r.errorType = .str("error")
            try await r.put(store, queue: q, id: id)
            try await client.connection.send(["SADD", k.revived(q), id])
            try await client.connection.send(["ZADD", k.expiry(q), "1000", id])
        }
        // Dead letters beyond the cap, to see that the reap got past the expiry step to the trim.
        for i in 0..<3 {
            var r = RawRecord()
            r.status = RawRecord.status("dead"); r.finishedAt = .int(nowMs())
            try await r.put(store, queue: q, id: "dead-\(i)", dead: nowMs() - 10 + Int64(i))
        }
        let report = try await store.reap(queue: q, now: nowMs(), limit: 100, reclaim: true, deadMax: 1, deadMaxAge: .seconds(604_800))
        #expect(report.expired == 3 && report.deadTrimmed == 2, "\(report)")
        for id in ["v1", "v2", "v3"] { #expect(try await store.record(queue: q, id: id) == nil, "\(id) was kept") }
        #expect(try await client.connection.send(["ZCARD", k.expiry(q)]).int == 0)
        #expect(try await client.connection.send(["SMEMBERS", k.revived(q)]).array.compactMap(\.string).sorted() == ["dead-0", "dead-1"])
        // And the next reap runs too.
        _ = try await store.reap(queue: q, now: nowMs(), limit: 100, reclaim: true, deadMax: 1, deadMaxAge: .seconds(604_800))
    }

    /// A payload that is not UTF-8 is not JSON text, so the job must end `malformed_envelope`.
    /// The fetch script cannot see it (Lua 5.1 has no UTF-8 check); the Redis layer keeps a bulk
    /// reply that is not UTF-8 as bytes (`RedisValue.bytes`), so `fetch` names the field and
    /// leaves the payload empty, never U+FFFD in place of the bytes (an echo job would succeed with
    /// `"\u{FFFD}\u{FFFD}"`). The worker's side is in `hostileRecordsEndMalformedEnvelopeAndWakeWaiters`.
    @Test func aPayloadThatIsNotUTF8IsNotRunAsSomethingElse() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store
        try await RawRecord.putPacked(store, queue: q, id: "u1", lua: #"cmsgpack.pack({3, 1, 'echo', 'io', '"\255\254"', 0, 1, 0, 1000, 60000, 0, 0, 0, 0, '', '', '', '', 0, 0})"#,
                                      ready: .io)
        // A payload with a real U+FFFD (valid UTF-8) passes through as it is.
        try await RawRecord.putPacked(store, queue: q, id: "u2", lua: #"cmsgpack.pack({3, 1, 'echo', 'io', '"\239\191\189"', 0, 1, 0, 1000, 60000, 0, 0, 0, 0, '', '', '', '', 0, 0})"#,
                                      ready: .io)
        let jobs = try await store.fetch(queue: q, kind: .io, max: 10, worker: "w", lease: .seconds(30), now: nowMs())
        try #require(jobs.count == 2, "\(jobs)")
        #expect(jobs[0].id == "u1" && jobs[0].invalidUTF8Field == "payload" && jobs[0].payload.isEmpty, "\(jobs[0])")
        #expect(jobs[1].id == "u2" && jobs[1].invalidUTF8Field == nil && jobs[1].payload == "\"\u{FFFD}\"", "\(jobs[1])")
        // Readers for display show the bytes as U+FFFD, and the record stays one line of JSON.
        let r = try #require(try await store.record(queue: q, id: "u1"))
        #expect(r.payload == "\"\u{FFFD}\u{FFFD}\"" && JSONText.isValid(r.json), "\(r.json)")
    }
}
