import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Failure behaviour: Redis restarts and outages, dead-letter bounds, sweeping, producer retries.
@Suite(.serialized) struct ReliabilityTests {
    func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test func workerRidesOutARedisRestartAndLosesNothing() async throws {
        let aof = ["--appendonly", "yes", "--appendfsync", "always"]
        var redis = try TestRedis(extraArgs: aof)
        let port = redis.port, dir = redis.dir
        let cli = KilnCLI(redis: redis, prefix: "kiln")
        let worker = try await cli.startWorker(["--processes", "0", "--lease", "2s"])
        let client = try KilnClient(options: KilnClientOptions(redis: redis.configuration, retry: RetryPolicy(attempts: 20, backoff: .milliseconds(100))))
        defer { client.close() }
        let job = try await client.enqueue("sleep", json: "{\"ms\":300}")
        try await eventually("running") { try await job.status() == .running }
        // Redis dies mid-job, the job ends while it is away (its result write must be retried),
        // and Redis comes back from its append-only file on the same port.
        redis.stop()
        try await eventually("the worker noticed the outage") { worker.stderr.contains("retrying until Redis is back") }
        redis = try TestRedis(extraArgs: aof, dir: dir, port: port)
        let r = try await job.wait(timeout: .seconds(30))
        #expect(r.status == .succeeded && r.attempts == 1, "\(r.json)")
        // The worker resumed fetching.
        #expect(try await client.enqueue("echo", json: "\"after\"").value(timeout: .seconds(30)) == .string("after"))
        // One outage, logged once by each loop, not once per command.
        let lines = worker.stderr.split(separator: "\n")
        #expect(lines.filter { $0.contains("cannot fetch jobs") }.count <= 2, "\(worker.stderr.suffix(3000))")
        #expect(!lines.contains { $0.contains("status=failed") || $0.contains("status=dead") })
        #expect(lines.contains { $0.contains("written again after Redis came back") })
        try await cli.stop(worker)
        redis.stop()
    }

    @Test func deadLetterSetIsBounded() async throws {
        let redis = TestRedis.shared
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys
        var ids: [String] = []
        for i in 0..<4 {
            // Put dead jobs in by hand (as if retries ran out), 1 ms apart: a protocol v3 record
            // with status dead and its entry in the dead-letter set.
            let id = "dead-\(i)"
            ids.append(id)
            var r = RawRecord()
            r.type = .str("x"); r.status = RawRecord.status("dead"); r.attempts = .int(1); r.maxAttempts = .int(2)
            r.finishedAt = .int(nowMs()); r.errorType = .str("error")
            try await r.put(client.store, queue: "default", id: id, dead: nowMs() - 10_000 + Int64(i))
        }
        let reap = { (max: Int, ageMs: Int64) in
            try await client.store.reap(queue: "default", now: Int64(self.nowMs()), limit: 100, reclaim: true, deadMax: max, deadMaxAge: .milliseconds(ageMs))
        }
        _ = try await reap(2, 86_400_000)
        #expect(try await client.deadJobs().map(\.id) == ["dead-2", "dead-3"])  // the oldest beyond 2 went
        #expect(try await client.connection.send(["HEXISTS", k.jobs("default"), "dead-0"]).int == 0)
        #expect(try await client.connection.send(["HEXISTS", k.jobs("default"), "dead-2"]).int == 1)
        _ = try await reap(100, 1)  // older than 1 ms: all gone
        #expect(try await client.deadJobs().isEmpty)
        #expect(try await client.connection.send(["HLEN", k.jobs("default")]).int == 0)
        #expect(try await client.connection.send(["ZCARD", k.dead("default")]).int == 0)
    }

    @Test func deadJobsCanBeListedAndRetried() async throws {
        let cli = KilnCLI(redis: .shared, prefix: TestRedis.uniquePrefix())
        let worker = try await cli.startWorker(["--processes", "0", "--retry-backoff", "10ms"])
        let failed = try await cli.run("enqueue", "fail", "{\"message\":\"first time\"}", "--retries", "1", "--wait")
        #expect(failed.code == 4)
        let dead = try await cli.run("dead", "--json")
        let record = try JSONSerialization.jsonObject(with: Data(dead.line.utf8)) as? [String: Any]
        let id = try #require(record?["id"] as? String)
        #expect(record?["status"] as? String == "dead")
        #expect(try await cli.run("retry", id).line == "queued")
        let again = try await cli.run("result", id, "--wait", "--timeout", "20s", "--json")
        #expect(again.code == 4 && again.stdout.contains("\"attempts\":2"), "\(again.stdout)")
        #expect(try await cli.run("retry", "--all-dead").line == "1 job(s) queued again")
        #expect(try await cli.run("retry", "no-such-job").code == 5)
        let succeeded = try await cli.run("enqueue", "noop")
        _ = try await cli.run("result", succeeded.line, "--wait")
        let refused = try await cli.run("retry", succeeded.line)
        #expect(refused.code == 2 && refused.stderr.contains("succeeded"))
        try await cli.stop(worker)
    }

    @Test func runningJobWithoutALeaseIsSweptAndReclaimed() async throws {
        let client = try TestRedis.shared.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys
        let job = try await client.enqueue("noop")
        let q = "default"
        // Leased, then its lease entry vanishes (as if written by a broken tool).
        _ = try await client.store.fetch(queue: q, kind: .io, max: 1, worker: "w", lease: .seconds(30), now: Int64(nowMs()))
        try await client.connection.send(["ZREM", k.leases(q), job.id])
        #expect(try await client.store.sweepAll(queue: q, deadline: Int64(nowMs() - 1)) == 1)
        #expect(try await client.connection.send(["ZSCORE", k.leases(q), job.id]).isNull == false)
        // A second pass finds nothing more to do.
        #expect(try await client.store.sweepAll(queue: q, deadline: Int64(nowMs() - 1)) == 0)
        let reaped = try await client.store.reap(queue: q, now: Int64(nowMs()), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(reaped.reclaimed == 1)
        #expect(try await job.status() == .queued)
    }

    /// The sweep pages through `Q:jobs` (`HSCAN` inside the script) and gives a lease entry to
    /// every record that says running but has none, whoever wrote it, passing over records
    /// that are not running, that already hold a lease, or that are no record at all.
    @Test func sweepPagesFindOnlyRunningJobsWithoutALease() async throws {
        let client = try TestRedis.shared.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let store = client.store, k = store.keys, q = "default"
        let running = RawRecord.status("running")
        var lost: [String] = []
        for i in 0..<40 {
            var r = RawRecord()
            r.attempts = .int(1); r.token = .int(1); r.maxAttempts = .int(3)
            // Values over 64 bytes make Redis keep the hash as a real hash table, which HSCAN
            // walks in pages (a small hash comes back whole in one page).
            r.payload = .str("\"" + String(repeating: "x", count: 80) + "\"")
            switch i % 5 {
            case 0:  // running, no lease entry: the sweep's business
                r.status = running
                try await r.put(store, queue: q, id: "lost-\(i)")
                lost.append("lost-\(i)")
            case 1:  // running with its lease
                r.status = running
                try await r.put(store, queue: q, id: "leased-\(i)", lease: nowMs() + 60_000)
            case 2:  // queued
                try await r.put(store, queue: q, id: "queued-\(i)", ready: .io)
            case 3:  // final
                r.status = RawRecord.status("succeeded"); r.finishedAt = .int(nowMs())
                try await r.put(store, queue: q, id: "done-\(i)")
            default:  // no record a script can use
                try await RawRecord.putBytes(store, queue: q, id: "garbage-\(i)", "garbage")
            }
        }
        let deadline = nowMs() - 1
        var cursor = "0", found = 0, pages = 0
        repeat {
            let page = try await store.sweep(queue: q, cursor: cursor, count: 5, deadline: deadline)
            cursor = page.next
            found += page.found
            pages += 1
        } while cursor != "0" && pages < 1000
        #expect(found == lost.count && pages > 1, "found \(found) in \(pages) pages")
        let leased = try await client.connection.send(["ZRANGEBYSCORE", k.leases(q), String(deadline), String(deadline)])
            .array.compactMap(\.string).sorted()
        #expect(leased == lost.sorted())
        #expect(try await client.connection.send(["ZCARD", k.leases(q)]).int == lost.count * 2)
        // Nothing else changed: the garbage is still garbage, nothing was queued or finalized.
        #expect(try await client.connection.send(["HGET", k.jobs(q), "garbage-4"]).string == "garbage")
        #expect(try await client.connection.send(["LLEN", k.ready(q, .io)]).int == 8)
        #expect(try await client.connection.send(["ZCARD", k.expiry(q)]).int == 0)
        // The reaper takes the swept jobs back (each had attempts left: queued again).
        let reaped = try await store.reap(queue: q, now: nowMs(), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(reaped.reclaimed == lost.count)
        #expect(try await store.statuses(queue: q, ids: lost).allSatisfy { $0 == "queued" })
    }

    @Test func producerRetriesAcrossADroppedConnectionExactlyOnce() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        let admin = RedisConnection(configuration: redis.configuration)
        defer { admin.close() }
        for (policy, expectSuccess) in [(RetryPolicy(attempts: 3, backoff: .milliseconds(10)), true), (RetryPolicy.none, false)] {
            let client = try KilnClient(options: KilnClientOptions(redis: redis.configuration, prefix: prefix, retry: policy))
            defer { client.close() }
            // Drop this client's connection (only this one: the server is shared with other tests).
            let clientID = try await client.connection.send(["CLIENT", "ID"]).int ?? -1
            try await admin.send(["CLIENT", "KILL", "ID", String(clientID)])
            do {
                _ = try await client.enqueue("noop")
                #expect(expectSuccess)
            } catch let e as KilnError {
                #expect(!expectSuccess && e.code == .redis, "\(e)")
            }
        }
        let client = try KilnClient(options: KilnClientOptions(redis: redis.configuration, prefix: prefix))
        defer { client.close() }
        #expect(try await client.queueStats().first?.queued == 1)
    }
}

extension ReliabilityTests {
    @Test func notNowRepliesAreTransient() {
        for reply in ["LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script", "READONLY You can't write against a read only replica.", "TRYAGAIN x", "MASTERDOWN x"] {
            #expect(RedisError.reply(reply, command: "GET", address: "h:1").isTransient, "\(reply)")
        }
        #expect(!RedisError.reply("ERR wrong number of arguments", command: "GET", address: "h:1").isTransient)
        #expect(!RedisError.reply("NOPERM this user has no permissions", command: "GET", address: "h:1").isTransient)
    }

    @Test func anErrorReplyIsNeverReportedAsNoSuchJob() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        let admin = RedisConnection(configuration: redis.configuration)
        defer { admin.close() }
        // Records are read by the get script, whose HMGET this user may not run: an error reply.
        let user = "nohmget\(prefix)"
        try await admin.send(["ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-hmget"])
        let good = try redis.client(prefix: prefix)
        defer { good.close() }
        let job = try await good.enqueue("noop")
        let limited = try KilnClient(options: KilnClientOptions(redis: try RedisConfiguration(url: "redis://\(user):pw@127.0.0.1:\(redis.port)"), prefix: prefix, retry: .none))
        defer { limited.close() }
        do {
            _ = try await limited.record(job.id, queue: "default")
            Issue.record("expected an error")
        } catch let e as KilnError {
            #expect(e.code == .redis, "an error reply must not read as a missing job: \(e)")
        }
        try await admin.send(["ACL", "DELUSER", user])
    }
}
