import Foundation
import Kiln
import KilnRedis
import Testing

/// `KilnStore`: cancel, release, extend, reap, sweep, dead letters, malformed records, result
/// expiry and the version marker.
extension StoreScriptsTests {
    func reap(_ s: KilnStore, at now: Int64, reclaim: Bool = true) async throws -> ReapReport {
        try await s.reap(queue: Self.q, now: now, reclaim: reclaim, deadMax: 10_000, deadMaxAge: .seconds(604_800))
    }

    /// `extendBlocking` on a thread of its own, as the heartbeat runs it.
    func extend(_ s: KilnStore, _ jobs: [(id: String, token: String)], deadline: Int64) async throws -> [String] {
        try await withCheckedThrowingContinuation { c in
            Thread {
                c.resume(with: Result { try s.extendBlocking(queue: Self.q, jobs: jobs, deadline: deadline, lease: .seconds(30)).map { "\($0.id):\($0.verdict.rawValue)" } })
            }.start()
        }
    }

    @Test func extendRenewsReportsLostAndCancel() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let tb = try await leased(s, job("b"), now: now)
        let ta = try await leased(s, job("a"), now: now)
        #expect(try await finish(s, [AttemptOutcome(id: "a", token: ta, ending: .succeeded, result: "1", endedAt: now)]) == [.left(.succeeded)])
        #expect(try await extend(s, [("b", tb), ("a", ta)], deadline: now + 90_000) == ["a:lost"])
        #expect(try await s.connection.send(["ZSCORE", s.keys.leases(Self.q), "b"]).string == String(now + 90_000))
        #expect(try await s.cancel(queue: Self.q, ids: ["b", "a", "zzz"], now: now) == [.running, .finished("succeeded"), .missing])
        #expect(try await extend(s, [("b", tb)], deadline: now + 90_000) == ["b:cancel"])
        #expect(try await s.record(queue: Self.q, id: "b")?.cancelRequested == true)
        // Cancel wins over a retry.
        #expect(try await finish(s, [failed("b", tb, at: now + 40, delay: 10)]) == [.left(.cancelled)])
    }

    @Test func cancelQueuedRetryingRunningFinishedMissing() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let tr = try await leased(s, job("rt"), now: now)
        #expect(try await finish(s, [failed("rt", tr, at: now, delay: 60_000)]) == [.left(.retrying)])
        let tf = try await leased(s, job("f"), now: now)
        #expect(try await finish(s, [AttemptOutcome(id: "f", token: tf, ending: .succeeded, result: "1", endedAt: now)]) == [.left(.succeeded)])
        _ = try await leased(s, job("run"), now: now)
        #expect(try await enqueue(s, [job("q1"), job("q2", kind: .cpu)], now: now) == .written)
        let replies = try await s.cancel(queue: Self.q, ids: ["q1", "rt", "run", "q2", "nope", "f"], now: now + 1)
        #expect(replies == [.cancelled, .cancelled, .running, .cancelled, .missing, .finished("succeeded")])
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 0, running: 1, retrying: 0, dead: 0))
        #expect(try await s.cancel(queue: Self.q, id: "q1", now: now + 2) == .finished("cancelled"))
        let rec = try #require(try await s.record(queue: Self.q, id: "q2"))
        #expect(rec.status == .cancelled && rec.finishedAt == now + 1 && rec.error?.type == "cancelled")
        // Never run: nothing left to fetch.
        #expect(try await fetch(s, now: now + 3).isEmpty)
        #expect(try await fetch(s, now: now + 3, kind: .cpu).isEmpty)
    }

    @Test func releaseHandsJobsBackUncounted() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let tc = try await leased(s, job("c1", kind: .cpu), now: now)
        let tx = try await leased(s, job("x"), now: now)
        #expect(try await s.cancel(queue: Self.q, id: "x", now: now) == .running)
        #expect(try await enqueue(s, [job("other")], now: now) == .written)
        #expect(try await s.release(queue: Self.q, jobs: [("c1", tc, .io), ("x", tx, .io)], now: now) == [.released, .cancelled])
        #expect(try await s.release(queue: Self.q, id: "c1", token: tc, to: .io, now: now) == .stale)
        #expect(try await s.release(queue: Self.q, id: "c1", token: "9", to: .cpu, now: now) == .stale)
        let rec = try #require(try await s.record(queue: Self.q, id: "c1"))
        #expect(rec.status == .queued && rec.attempts == 0 && rec.kind == .io && rec.worker == nil && rec.startedAt == nil)
        // Handed back: it runs next, on the kind it was released to, with a new token.
        let again = try await fetch(s, now: now)
        #expect(again.map(\.id) == ["c1", "other"] && again.first?.token == "2" && again.first?.attempt == 1)
    }

    @Test func reapReclaimsExpiredLeases() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        #expect(try await enqueue(s, [job("l1", maxAttempts: 2), job("l2", maxAttempts: 1), job("l3", maxAttempts: 3)], now: now) == .written)
        #expect(try await fetch(s, now: now, lease: .milliseconds(100)).count == 3)
        #expect(try await s.cancel(queue: Self.q, id: "l3", now: now) == .running)
        #expect(try await reap(s, at: now + 400_000, reclaim: false).reclaimed == 0, "reclaimed with reclaim off")
        #expect(try await reap(s, at: now + 400_000).reclaimed == 3)
        let recs = try await s.records(queue: Self.q, ids: ["l1", "l2", "l3"])
        #expect(recs[0]?.status == .queued && recs[0]?.error?.type == "worker_lost")
        #expect(recs[1]?.status == .failed && recs[1]?.error?.type == "worker_lost")
        #expect(recs[2]?.status == .cancelled)
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 1, running: 0, retrying: 0, dead: 0))
        // l1's second and last attempt is lost too: dead.
        #expect(try await fetch(s, now: now + 400_001, lease: .milliseconds(100)).map(\.id) == ["l1"])
        #expect(try await reap(s, at: now + 800_000).reclaimed == 1)
        #expect(try await s.deadJobs(queue: Self.q, limit: 5).map(\.statusText) == ["dead"])
    }

    @Test func deadJobsCanBeRetried() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let t1 = try await leased(s, job("d", maxAttempts: 2), now: now)
        #expect(try await finish(s, [failed("d", t1, at: now, delay: 0)]) == [.left(.retrying)])
        #expect(try await reap(s, at: now + 1, reclaim: false).promoted == 1)
        let t2 = try #require(try await fetch(s, now: now + 2).first).token
        #expect(try await finish(s, [failed("d", t2, at: now + 3, delay: 0)]) == [.left(.dead)])
        #expect(try await s.counts(queue: Self.q).dead == 1)
        #expect(try await s.retryDead(queue: Self.q, id: "d", now: now + 4) == .queued)
        #expect(try await s.retryDead(queue: Self.q, id: "d", now: now + 4) == .notRetryable("queued"))
        #expect(try await s.retryDead(queue: Self.q, id: "nope", now: now + 4) == .missing)
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 1, running: 0, retrying: 0, dead: 0))
        let rec = try #require(try await s.record(queue: Self.q, id: "d"))
        #expect(rec.status == .queued && rec.attempts == 0 && rec.finishedAt == nil)
    }

    @Test func malformedRecordsAreFinalizedFailedAndNeverRun() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let jobs = s.keys.jobs(Self.q)
        _ = try await s.connection.send(["HSET", jobs, "m", "garbage"])
        // A v3 record with max_attempts 0, written with Redis's own MessagePack.
        _ = try await s.connection.send(["EVAL", "return redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({3, 1, 'noop', 'io', 'null', 0, 0, 0, 1000, 1000, 0, 0, 0, 0, '', '', '', '', 0, 0}))",
                                         "1", jobs, "m2"])
        _ = try await s.connection.send(["RPUSH", s.keys.ready(Self.q, .io), "m", "m2", "ghost"])
        #expect(try await fetch(s, now: now).isEmpty, "a malformed record was run")
        let recs = try await s.records(queue: Self.q, ids: ["m", "m2", "ghost"])
        #expect(recs[0]?.status == .failed && recs[0]?.error?.type == "malformed_envelope")
        #expect(recs[1]?.status == .failed && recs[1]?.error?.message == "record field max_attempts is missing or out of range")
        #expect(recs[2] == nil)
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 0, running: 0, retrying: 0, dead: 0))
    }

    @Test func resultsExpireThroughTheIndexAndRevivedJobsSurvive() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let t = try await leased(s, job("t1", ttl: 1000), now: now)
        #expect(try await finish(s, [AttemptOutcome(id: "t1", token: t, ending: .succeeded, result: "1", endedAt: now)]) == [.left(.succeeded)])
        #expect(try await reap(s, at: now + 900).expired == 0)
        #expect(try await s.exist([(Self.q, "t1")]) == [true], "deleted before its second")
        #expect(try await reap(s, at: now + 3000).expired == 1)
        #expect(try await s.exist([(Self.q, "t1")]) == [false])
        // A job put back by retry_dead is not deleted by its old expiry member.
        let tr = try await leased(s, job("rv", maxAttempts: 1, ttl: 1000), now: now)
        #expect(try await finish(s, [failed("rv", tr, at: now)]) == [.left(.failed)])
        #expect(try await s.retryDead(queue: Self.q, id: "rv", now: now + 10) == .queued)
        _ = try await reap(s, at: now + 5000, reclaim: false)
        #expect(try await s.record(queue: Self.q, id: "rv")?.status == .queued, "a revived job was deleted by its old expiry")
        let t2 = try #require(try await fetch(s, now: now + 6000).first).token
        #expect(try await finish(s, [AttemptOutcome(id: "rv", token: t2, ending: .succeeded, result: "2", endedAt: now + 6000)]) == [.left(.succeeded)])
        _ = try await reap(s, at: now + 6500, reclaim: false)
        #expect(try await s.record(queue: Self.q, id: "rv")?.status == .succeeded, "deleted before its new expiry")
        #expect(try await reap(s, at: now + 8000, reclaim: false).expired == 1)
        #expect(try await s.record(queue: Self.q, id: "rv") == nil)
        #expect(try await redisInt(s, "SISMEMBER", s.keys.revived(Self.q), "rv") == 0, "still listed as revived")
    }

    @Test func sweepGivesRunningJobsWithoutLeaseOne() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        _ = try await leased(s, job("a"), now: now)
        #expect(try await enqueue(s, (0..<300).map { job("q\($0)") }, now: now) == .written)
        _ = try await s.connection.send(["ZREM", s.keys.leases(Self.q), "a"])
        #expect(try await s.sweepAll(queue: Self.q, deadline: now + 1234) == 1)
        #expect(try await s.connection.send(["ZSCORE", s.keys.leases(Self.q), "a"]).string == String(now + 1234))
        #expect(try await s.sweepAll(queue: Self.q, deadline: now + 1234) == 0)
    }

    @Test func scriptsReloadAfterTheServerLostThem() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        #expect(try await enqueue(s, [job("a")], now: nowMs()) == .written)
        _ = try await s.connection.send(["SCRIPT", "FLUSH"])
        #expect(try await s.records(queue: Self.q, ids: ["a", "b"]).map { $0?.statusText } == ["queued", nil])
    }

    // MARK: version marker

    func versionLine(_ prefix: String, _ found: String) -> String {
        found == "2" ? "prefix '\(prefix)' holds protocol v2 data but this kiln speaks v3; drain it with a v2 worker, or use another --prefix / KILN_PREFIX"
            : "prefix '\(prefix)' holds data of an unknown protocol version ('\(found)') but this kiln speaks v3; upgrade kiln, or use another --prefix / KILN_PREFIX"
    }

    @Test func theMarkerIsSetOnAnEmptyPrefixOnly() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        try await s.checkVersion(mark: false)
        #expect(try await redisInt(s, "EXISTS", s.keys.version) == 0, "a reader wrote the marker")
        try await s.checkVersion(mark: true)
        #expect(try await s.connection.send(["GET", s.keys.version]).string == "3")
        try await s.on(s.connection).checkVersion(mark: true)
    }

    /// `nil`: v2 data from before v2 had a marker (`P:queues` without `P:version`).
    @Test(arguments: [String?.none, "2", "banana"]) func theMarkerRefusesOtherData(found: String?) async throws {
        let s = makeStore()
        defer { s.connection.close() }
        _ = try await s.connection.send(["SADD", s.keys.queues, Self.q])
        if let found { _ = try await s.connection.send(["SET", s.keys.version, found]) }
        for mark in [false, true] {
            do {
                try await s.checkVersion(mark: mark)
                Issue.record("prefix with \(found ?? "no marker") accepted")
            } catch let e as KilnError {
                #expect(e.code == .versionMismatch && e.message == versionLine(s.prefix, found ?? "2"), "\(e)")
            }
        }
        #expect(try await s.connection.send(["GET", s.keys.version]).string == found, "a refusal wrote the marker")
    }
}

/// `KilnStore`: batching details (one `now` per finish call, jobs named twice in one batch).
extension StoreScriptsTests {
    @Test func aFinishGroupIsWrittenWithItsLatestEndAndRecognisedAgain() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        #expect(try await enqueue(s, [job("a"), job("b")], now: now) == .written)
        let got = try await fetch(s, now: now)
        let outcomes = [AttemptOutcome(id: "a", token: got[0].token, ending: .succeeded, result: "1", endedAt: now + 3),
                        failed("b", got[1].token, at: now + 1, delay: 100)]
        for _ in 0..<2 { #expect(try await finish(s, outcomes) == [.left(.succeeded), .left(.retrying)]) }
        #expect(try await s.record(queue: Self.q, id: "a")?.finishedAt == now + 3)
        #expect(try await s.record(queue: Self.q, id: "b")?.retryAt == now + 103)
    }

    @Test func aJobNamedTwiceInOneBatchIsHandledInOrder() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let t = try await leased(s, job("a"), now: now)
        let twice = [AttemptOutcome(id: "a", token: t, ending: .succeeded, result: "1", endedAt: now), failed("a", t, at: now, delay: 100)]
        // The store splits the batch (a script refuses a call naming an id twice); the second
        // call (same attempt, same `now`, another outcome) is not this write retried: stale.
        // The job is left succeeded, and nothing is written twice.
        #expect(try await finish(s, twice) == [.left(.succeeded), .stale])
        #expect(try await redisInt(s, "ZCARD", s.keys.expiry(Self.q)) == 1)
        #expect(try await s.record(queue: Self.q, id: "a")?.status == .succeeded)
        #expect(try await redisInt(s, "ZCARD", s.keys.later(Self.q)) == 0)
        let tb = try await leased(s, job("b"), now: now)
        #expect(try await s.release(queue: Self.q, jobs: [("b", tb, .io), ("b", tb, .io)], now: now) == [.released, .stale])
        #expect(try await redisInt(s, "LLEN", s.keys.ready(Self.q, .io)) == 1)
        #expect(try await s.cancel(queue: Self.q, ids: ["b", "b"], now: now) == [.cancelled, .finished("cancelled")])
    }
}
