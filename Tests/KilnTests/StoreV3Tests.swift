import Foundation
import Kiln
import KilnRedis
import Synchronization
import Testing

/// `KilnStore` (protocol v3, `docs/protocol.md`) against a real redis-server: every scenario
/// of `design/v3/check.py` (which runs the same Lua from Python), through the typed methods. Each test has a prefix of its own.
@Suite struct StoreV3Tests {
    let redis = TestRedis.shared
    static let q = "default"

    func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func makeStore() -> KilnStore {
        KilnStore(prefix: TestRedis.uniquePrefix(), connection: RedisConnection(configuration: redis.configuration))
    }

    func job(_ id: String, kind: JobKind = .io, payload: String = "null", maxAttempts: Int = 4, ttl: Int64 = 86_400_000) -> NewJob {
        NewJob(id: id, type: "noop", kind: kind, payload: payload, maxAttempts: maxAttempts, timeoutMs: 300_000, resultTTLms: ttl)
    }

    func enqueue(_ s: KilnStore, _ jobs: [NewJob], now: Int64) async throws -> EnqueueReply {
        try await s.enqueue([(Self.q, jobs[...])], registering: [Self.q], now: now)[0]
    }

    func fetch(_ s: KilnStore, now: Int64, kind: JobKind = .io, lease: Duration = .seconds(30)) async throws -> [FetchedJob] {
        try await s.fetch(queue: Self.q, kind: kind, max: 50, worker: "w1:1", lease: lease, leaseMargin: .seconds(4), now: now)
    }

    /// Enqueues `j` and leases it (alone): its token.
    func leased(_ s: KilnStore, _ j: NewJob, now: Int64, lease: Duration = .seconds(30)) async throws -> String {
        #expect(try await enqueue(s, [j], now: now) == .written)
        let got = try await fetch(s, now: now, kind: j.kind, lease: lease)
        #expect(got.map(\.id) == [j.id])
        return try #require(got.first).token
    }

    func finish(_ s: KilnStore, _ attempts: [AttemptOutcome]) async throws -> [FinishReply?] {
        try await s.finish([(Self.q, attempts[...])])[0].get()
    }

    func failed(_ id: String, _ token: String, at now: Int64, delay: Int64? = nil) -> AttemptOutcome {
        AttemptOutcome(id: id, token: token, ending: .failed, errorType: "error", errorMessage: "boom", retryDelayMs: delay, endedAt: now)
    }

    func redisInt(_ s: KilnStore, _ command: String...) async throws -> Int? {
        try await s.connection.send(command).int
    }

    // MARK: enqueue

    @Test func enqueueIsAllOrNothingAndRecognisesItsRetry() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let jobs = [job("a"), job("b", payload: #"{"n":12345678901234567890}"#)]
        #expect(try await enqueue(s, jobs, now: now) == .written)
        // The same call again, as a retry after a dropped connection sends it: its own write.
        #expect(try await enqueue(s, jobs, now: now) == .written)
        #expect(try await redisInt(s, "LLEN", s.keys.ready(Self.q, .io)) == 2, "a retried call queued its jobs twice")
        // Another call naming an existing id writes nothing.
        #expect(try await enqueue(s, [job("c"), job("a")], now: now + 1) == .exists(first: 2, count: 1))
        #expect(try await s.exist([(Self.q, "c"), (Self.q, "a")]) == [false, true])
        #expect(try await s.queueNames() == [Self.q])
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 2, running: 0, retrying: 0, dead: 0))
    }

    @Test func enqueueRefusesRangeErrorsAndRepeatedIds() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        guard case .refused(let range) = try await enqueue(s, [job("x", maxAttempts: 0)], now: now) else { throw TestFailure("max_attempts 0 accepted") }
        #expect(range.contains("job 1: max_attempts must be 1-1001"), "\(range)")
        guard case .refused(let repeated) = try await enqueue(s, [job("y"), job("y")], now: now) else { throw TestFailure("repeated id accepted") }
        #expect(repeated.contains("job 2: id repeats job 1"), "\(repeated)")
        #expect(try await redisInt(s, "EXISTS", s.keys.jobs(Self.q), s.keys.ready(Self.q, .io)) == 0, "a refused call wrote something")
        await #expect(throws: KilnError.self) { try await s.enqueue([(Self.q, [][...])], registering: [], now: now) }
        let tooMany = (0...KilnStore.enqueueChunk).map { job("j\($0)") }
        await #expect(throws: KilnError.self) { try await s.enqueue([(Self.q, tooMany[...])], registering: [], now: now) }
    }

    // MARK: fetch and finish

    @Test func fetchLeasesInOrderWithTokens() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let payload = #"{"n":12345678901234567890}"#
        #expect(try await enqueue(s, [job("a"), job("b", payload: payload), job("c", kind: .cpu)], now: now) == .written)
        let got = try await fetch(s, now: now)
        #expect(got.map(\.id) == ["a", "b"] && got.map(\.token) == ["1", "1"] && got.map(\.attempt) == [1, 1])
        #expect(got[1].payload == payload, "payload not byte for byte")
        #expect(got[0].kindText == "io" && got[0].maxAttempts == 4 && got[0].timeoutMs == 300_000 && got[0].queue == Self.q && got[0].type == "noop")
        // The lease: the job's timeout + margin (shorter than 30 s? no: 300 s + 4 s, so 30 s).
        let deadline = try #require(try await s.connection.send(["ZSCORE", s.keys.leases(Self.q), "a"]).string.flatMap { Int64($0) })
        #expect(deadline >= now + 30_000 && deadline < now + 60_000)
        #expect(try await s.counts(queue: Self.q) == QueueStats(name: Self.q, queued: 1, running: 2, retrying: 0, dead: 0))
        let rec = try #require(try await s.record(queue: Self.q, id: "a"))
        #expect(rec.status == .running && rec.worker == "w1:1" && rec.attempts == 1 && rec.startedAt != nil && rec.finishedAt == nil)
        #expect(try await s.record(queue: Self.q, id: "nope") == nil)
    }

    @Test func waitForWorkReturnsWhenAJobIsReadyAndTakesNothing() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let blocking = RedisBlockingConnection(configuration: redis.configuration)
        defer { blocking.close() }
        #expect(try await enqueue(s, [job("a", kind: .cpu)], now: nowMs()) == .written)
        let start = ContinuousClock.now
        try await s.waitForWork(queue: Self.q, kind: .cpu, on: blocking, seconds: 10)
        #expect(ContinuousClock.now - start < .seconds(5), "waited although a job was ready")
        #expect(try await fetch(s, now: nowMs(), kind: .cpu).map(\.id) == ["a"])
    }

    @Test(arguments: [
        (AttemptOutcome.Ending.succeeded, 1, Int64?.none, JobStatus.succeeded),
        (.failed, 3, 5_000, .retrying),
        (.failed, 3, nil, .dead),
        (.failed, 1, nil, .failed),
        (.timedOut, 1, 1_000, .timedOut),
        (.cancelled, 3, nil, .cancelled),
    ])
    func retriedFinishRecognisesItsOwnWrite(ending: AttemptOutcome.Ending, maxAttempts: Int, delay: Int64?, left: JobStatus) async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let token = try await leased(s, job("a", maxAttempts: maxAttempts), now: now)
        let a = AttemptOutcome(id: "a", token: token, ending: ending, result: ending == .succeeded ? "42" : "",
                               errorType: ending == .succeeded ? "" : "error", errorMessage: "boom", retryDelayMs: delay, endedAt: now + 5)
        #expect(try await finish(s, [a]) == [.left(left)])
        #expect(try await finish(s, [a]) == [.left(left)], "a retried finish was not recognised")
        let rec = try #require(try await s.record(queue: Self.q, id: "a"))
        #expect(rec.status == left && rec.attempts == 1)
        #expect(try await redisInt(s, "ZCARD", s.keys.leases(Self.q)) == 0)
        #expect(try await redisInt(s, "ZCARD", s.keys.expiry(Self.q)) == (left.isFinal ? 1 : 0), "indexed for expiry once")
        if left == .succeeded { #expect(rec.result == "42" && rec.error == nil && rec.finishedAt == now + 5) }
        if left == .retrying { #expect(try await s.connection.send(["ZSCORE", s.keys.later(Self.q), "a"]).string == String(now + 5 + delay!)) }
        if left == .dead { #expect(try await s.deadJobs(queue: Self.q, limit: 10).map(\.id) == ["a"]) }
        if left != .succeeded { #expect(rec.error?.type == "error" && rec.error?.message == "boom") }
    }

    @Test func staleTokensAndLateWritesAreRefused() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let token = try await leased(s, job("a"), now: now)
        let done = AttemptOutcome(id: "a", token: token, ending: .succeeded, result: #"{"ok":true}"#, endedAt: now + 5)
        #expect(try await finish(s, [done]) == [.left(.succeeded)])
        // Another call's write of the same attempt, later: stale. An older token: stale.
        #expect(try await finish(s, [failed("a", token, at: now + 9)]) == [.stale])
        #expect(try await finish(s, [failed("a", "0", at: now + 5)]) == [.stale])
        #expect(try await s.record(queue: Self.q, id: "a")?.result == #"{"ok":true}"#)
        // Fencing across attempts: b retries, runs again with token 2; its first token is stale.
        let t1 = try await leased(s, job("b"), now: now)
        #expect(try await finish(s, [failed("b", t1, at: now, delay: 1000)]) == [.left(.retrying)])
        #expect(try await s.reap(queue: Self.q, now: now + 500, reclaim: true, deadMax: 100, deadMaxAge: .seconds(3600)).promoted == 0)
        let r = try await s.reap(queue: Self.q, now: now + 1006, reclaim: true, deadMax: 100, deadMaxAge: .seconds(3600))
        #expect(r.promoted == 1 && r.nextDueMs == nil)
        let again = try await fetch(s, now: now + 1010)
        #expect(again.map(\.id) == ["b"] && again.first?.token == "2" && again.first?.attempt == 2)
        #expect(try await finish(s, [AttemptOutcome(id: "b", token: t1, ending: .succeeded, endedAt: now + 1020)]) == [.stale])
    }

    @Test func oneFinishCallIsOneDoneMessageNamingItsIds() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let messages = Mutex<[String]>([])
        let confirmed = Mutex(false)
        let sub = RedisBlockingConnection(configuration: redis.configuration)
        let listener = Task {
            try await sub.subscribe([s.doneChannel(queue: Self.q)], onConfirm: { _ in confirmed.withLock { $0 = true } }) { m in
                if m.array.first?.string == "message", let text = m.array.last?.string { messages.withLock { $0.append(text) } }
            }
        }
        defer { listener.cancel(); sub.close() }
        try await eventually("subscribe confirmation") { confirmed.withLock { $0 } }
        #expect(try await enqueue(s, [job("a"), job("b"), job("c"), job("d")], now: now) == .written)
        let got = try await fetch(s, now: now)
        let outcomes = got.filter { $0.id != "d" }.map { AttemptOutcome(id: $0.id, token: $0.token, ending: .succeeded, result: "1", endedAt: now) }
        #expect(try await finish(s, outcomes) == [.left(.succeeded), .left(.succeeded), .left(.succeeded)])
        // A running job's cancel makes nothing final: no message.
        #expect(try await s.cancel(queue: Self.q, ids: ["d"], now: now) == [.running])
        // A marker after the calls: everything before it has arrived once it has.
        _ = try await s.connection.send(["PUBLISH", s.doneChannel(queue: Self.q), "marker"])
        try await eventually("the marker message") { messages.withLock { $0.last == "marker" } }
        #expect(messages.withLock { $0 } == ["a b c", "marker"])
        let parsed = s.parseDone(channel: s.doneChannel(queue: Self.q), message: "a b c")
        #expect(parsed?.queue == Self.q && parsed?.ids == ["a", "b", "c"])
    }

    @Test func workersHearCancelsOfRunningJobs() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let heard = Mutex<[String]>([])
        let sub = RedisBlockingConnection(configuration: redis.configuration)
        let listener = Task {
            try await s.listenForCancels(on: sub, onReconnect: {}) { q, id in heard.withLock { $0.append("\(q) \(id)") } }
        }
        defer { listener.cancel(); sub.close() }
        let now = nowMs()
        _ = try await leased(s, job("r"), now: now)
        // The subscription has no confirmation hook here: cancel until a message arrives (the
        // flag is set once; each call publishes again).
        try await eventually("the cancel message") {
            let reply = try await s.cancel(queue: Self.q, id: "r", now: now)
            guard reply == .running else { throw TestFailure("cancel of a running job answered \(reply)") }
            return heard.withLock { !$0.isEmpty }
        }
        #expect(heard.withLock { $0.first } == "\(Self.q) r")
    }
}
