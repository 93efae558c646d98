import Foundation
import Kiln
import KilnRedis
import Testing

/// The client and the scripts, with the worker's side played by the test through the same
/// scripts a worker uses.
@Suite struct ClientTests {
    let redis = TestRedis.shared

    /// Leases up to `count` jobs like a worker would; returns (id, token) pairs.
    func lease(_ client: KilnClient, queue: String = "default", kind: JobKind = .io, count: Int = 1, worker: String = "w1", leaseMs: Int = 30_000) async throws -> [(id: String, token: String)] {
        try await client.store.fetch(queue: queue, kind: kind, max: count, worker: worker, lease: .milliseconds(leaseMs), now: nowMs())
            .map { ($0.id, $0.token) }
    }

    func finish(_ client: KilnClient, _ id: String, token: String, outcome: String, result: String = "", queue: String = "default", delay: Int = -1) async throws -> String {
        let attempt = AttemptOutcome(id: id, token: token, ending: AttemptOutcome.Ending(rawValue: outcome)!, result: result,
                                     errorType: outcome == "succeeded" ? "" : "error", errorMessage: "boom",
                                     retryDelayMs: delay < 0 ? nil : Int64(delay), endedAt: nowMs())
        return try await client.store.finishOne(queue: queue, attempt).word
    }

    func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test func enqueueWritesARecordAndQueuesTheId() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("echo", json: "{\"a\":1}", options: JobOptions(timeout: .seconds(7), retries: 2))
        let rec = try await job.record()
        #expect(rec.status == .queued && rec.type == "echo" && rec.payload == "{\"a\":1}")
        #expect(rec.maxAttempts == 3 && rec.timeoutMs == 7000 && rec.kind == .io && rec.attempts == 0)
        #expect(try await client.connection.send(["LRANGE", client.store.keys.ready("default", .io), "0", "-1"]).array == [.bulk(job.id)])
        #expect(try await client.queueStats() == [QueueStats(name: "default", queued: 1, running: 0, retrying: 0, dead: 0)])
    }

    @Test func kindComesFromOptionsThenRegistryThenIO() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix(), knownKinds: ["resize": .cpu])
        defer { client.close() }
        #expect(try await client.enqueue("resize").record().kind == .cpu)
        #expect(try await client.enqueue("other").record().kind == .io)
        #expect(try await client.enqueue("other", options: JobOptions(kind: .cpu)).record().kind == .cpu)
    }

    @Test func badInputWritesNothing() async throws {
        let prefix = TestRedis.uniquePrefix()
        let client = try KilnClient(options: KilnClientOptions(redis: redis.configuration, prefix: prefix, maxPayloadBytes: 100))
        defer { client.close() }
        let bad: [EnqueueRequest] = [
            EnqueueRequest(type: "echo", payload: "{bad"),
            EnqueueRequest(type: "echo", payload: String(repeating: "1", count: 101)),
            EnqueueRequest(type: "", payload: "1"),
            EnqueueRequest(type: "echo", payload: "1", options: JobOptions(queue: "bad queue")),
            EnqueueRequest(type: "echo", payload: "1", options: JobOptions(timeout: .zero)),
            EnqueueRequest(type: "echo", payload: "1", options: JobOptions(retries: -1)),
        ]
        for r in bad {
            // A valid job first in the same batch: the whole batch is refused, nothing written.
            await #expect(throws: KilnError.self) { try await client.enqueueBatch([EnqueueRequest(type: "noop"), r]) }
        }
        #expect(try await client.connection.send(["KEYS", "\(prefix):*"]).array.isEmpty)
    }

    @Test func bulkEnqueueKeepsOrder() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let ids = try await client.enqueueBatch((0..<500).map { EnqueueRequest(type: "echo", payload: String($0)) })
        #expect(ids.count == 500 && Set(ids).count == 500)
        let leased = try await lease(client, count: 500)
        #expect(leased.map(\.id) == ids)  // FIFO
    }

    @Test func duplicateIdIsRefused() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        _ = try await client.enqueue("noop", options: JobOptions(id: "order-1"))
        do {
            _ = try await client.enqueue("noop", options: JobOptions(id: "order-1"))
            Issue.record("expected duplicate error")
        } catch let e as KilnError {
            #expect(e.code == .duplicateJob)
        }
    }

    @Test func futureWakesPromptlyWithoutPolling() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("echo", json: "{\"x\":42}", result: [String: Int].self)
        let waiter = Task { () -> ([String: Int], ContinuousClock.Instant) in
            let v = try await job.value(timeout: .seconds(60))
            return (v, ContinuousClock.now)
        }
        let leased = try await lease(client)
        try await Task.sleep(for: .milliseconds(200))  // let the waiter block on Redis
        let finishedAt = ContinuousClock.now
        #expect(try await finish(client, leased[0].id, token: leased[0].token, outcome: "succeeded", result: "{\"x\":42}") == "succeeded")
        let (value, wokeAt) = try await waiter.value
        #expect(value == ["x": 42])
        // The waiter blocks with a 60 s timeout; waking this fast means it was woken, not polling.
        #expect(wokeAt - finishedAt < .seconds(1))
    }

    @Test func manyWaitersAllWake() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop")
        try await withThrowingTaskGroup(of: JobRecord.self) { group in
            for _ in 0..<5 { group.addTask { try await job.wait(timeout: .seconds(30)) } }
            let leased = try await lease(client)
            try await Task.sleep(for: .milliseconds(100))
            _ = try await finish(client, leased[0].id, token: leased[0].token, outcome: "succeeded", result: "null")
            var n = 0
            for try await rec in group {
                #expect(rec.status == .succeeded)
                n += 1
            }
            #expect(n == 5)
        }
    }

    @Test func waitTimesOut() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop")
        do {
            _ = try await job.value(timeout: .milliseconds(200))
            Issue.record("expected a timeout")
        } catch let e as KilnError {
            #expect(e.code == .waitTimedOut)
        }
    }

    @Test func staleAttemptCannotOverwriteNewerOne() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop")
        let first = try await lease(client, worker: "old", leaseMs: 1)
        try await Task.sleep(for: .milliseconds(20))
        // The reaper puts the expired lease back; a new worker takes the job.
        let reaped = try await client.store.reap(queue: "default", now: nowMs(), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(reaped.reclaimed == 1)
        let second = try await lease(client, worker: "new")
        #expect(second.first?.id == job.id && second[0].token != first[0].token)
        #expect(try await finish(client, job.id, token: first[0].token, outcome: "succeeded", result: "\"old\"") == "stale")
        #expect(try await finish(client, job.id, token: second[0].token, outcome: "succeeded", result: "\"new\"") == "succeeded")
        #expect(try await finish(client, job.id, token: first[0].token, outcome: "failed") == "stale")
        let rec = try await job.record()
        #expect(rec.result == "\"new\"" && rec.worker == "new" && rec.attempts == 2)
    }

    @Test func retryThenDeadLetter() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("fail", options: JobOptions(retries: 1))
        let a1 = try await lease(client)
        #expect(try await finish(client, job.id, token: a1[0].token, outcome: "failed", delay: 0) == "retrying")
        #expect(try await job.status() == .retrying)
        _ = try await client.store.reap(queue: "default", now: nowMs() + 1, limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        let a2 = try await lease(client)
        #expect(try await finish(client, job.id, token: a2[0].token, outcome: "failed", delay: 0) == "dead")
        let rec = try await job.record()
        #expect(rec.status == .dead && rec.attempts == 2 && rec.error?.message == "boom")
        #expect(try await client.queueStats().first?.dead == 1)
    }

    @Test func cancelQueuedJobRemovesIt() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop")
        #expect(try await job.cancel() == .cancelled)
        #expect(try await job.status() == .cancelled)
        #expect(try await lease(client).isEmpty)  // it never runs
        #expect(try await job.cancel() == .alreadyFinished("cancelled"))
        do {
            _ = try await job.value(timeout: .seconds(1))
            Issue.record("expected jobUnsuccessful")
        } catch let e as KilnError {
            #expect(e.code == .jobUnsuccessful && e.record?.status == .cancelled)
        }
    }

    @Test func cancelRunningJobIsDurableAndPublished() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop")
        let leased = try await lease(client)
        #expect(try await job.cancel(wait: .zero) == .stopping)
        #expect(try await job.record().cancelRequested)
        // The attempt's own end is then recorded as cancelled.
        #expect(try await finish(client, job.id, token: leased[0].token, outcome: "failed") == "cancelled")
    }

    @Test func unknownIdIsNoSuchJob() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        _ = try await client.enqueue("noop")
        await #expect(throws: KilnError(.noSuchJob, "no job with id 01NOPE (never enqueued, or its record expired)")) {
            try await client.record("01NOPE")
        }
    }

    @Test func finishedRecordsExpire() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let job = try await client.enqueue("noop", options: JobOptions(resultTTL: .seconds(60)))
        let l = try await lease(client)
        _ = try await finish(client, job.id, token: l[0].token, outcome: "succeeded", result: "null")
        // No TTL per record: the id is indexed in Q:expiry at finished_at + result TTL.
        let at = try #require(try await RawRecord.expiresAt(client.store, id: job.id))
        let left = at - nowMs()
        #expect(left > 50_000 && left <= 61_000, "expires in \(left) ms")  // rounded up to a whole second
    }
}

extension ClientTests {
    @Test func batchWithAnExistingOrRepeatedIdWritesNothing() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        _ = try await client.enqueue("noop", options: JobOptions(id: "taken"))
        for batch in [[EnqueueRequest(type: "noop"), EnqueueRequest(type: "noop", options: JobOptions(id: "taken"))],
                      [EnqueueRequest(type: "noop", options: JobOptions(id: "twice")), EnqueueRequest(type: "noop", options: JobOptions(id: "twice"))]] {
            do {
                _ = try await client.enqueueBatch(batch)
                Issue.record("expected duplicateJob")
            } catch let e as KilnError {
                #expect(e.code == .duplicateJob)
            }
            #expect(try await client.queueStats().first?.queued == 1)  // only the first "taken" job
        }
    }
}

extension ClientTests {
    @Test func leaseIsSizedFromTheJobTimeout() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys
        let short = try await client.enqueue("noop", options: JobOptions(timeout: .seconds(1)))
        let long = try await client.enqueue("noop", options: JobOptions(timeout: .seconds(600)))
        let now = nowMs()
        _ = try await client.store.fetch(queue: "default", kind: .io, max: 2, worker: "w", lease: .seconds(30), leaseMargin: .seconds(2), now: Int64(now))
        let after = Int(nowMs())
        let s = try await client.connection.send(["ZSCORE", k.leases("default"), short.id]).int ?? 0
        let l = try await client.connection.send(["ZSCORE", k.leases("default"), long.id]).int ?? 0
        // Leases run from the later of `now` and Redis's clock at the call (LeaseClockTests).
        #expect((Int(now) + 3000...after + 3000).contains(s))    // timeout 1 s + margin 2 s
        #expect((Int(now) + 30_000...after + 30_000).contains(l))  // capped by the worker's lease
    }
}
