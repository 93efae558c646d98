import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The worker as users run it: the real `kiln worker` binary against a real Redis.
@Suite(.serialized) struct WorkerTests {
    let redis = TestRedis.shared
    let prefix = TestRedis.uniquePrefix()
    var cli: KilnCLI { KilnCLI(redis: redis, prefix: prefix) }

    func client() throws -> KilnClient { try redis.client(prefix: prefix, knownKinds: ["cpu.spin": .cpu, "sha256": .cpu, "cpu.crash": .cpu]) }

    /// Child processes of `pid` (the worker's pool).
    /// (Each thread lists the children it spawned, and the pool spawns from its own threads.)
    func children(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var out: [pid_t] = []
        for t in tasks {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? ""
            out += text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return out.filter { alive($0) }.sorted()
    }

    func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")  // a zombie has exited
    }

    @Test func ioJobsRunConcurrently() async throws {
        let worker = try await cli.startWorker(["--concurrency", "200", "--processes", "0"])
        let kiln = try client()
        defer { kiln.close() }
        let ids = try await kiln.enqueueBatch((0..<100).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":500}") })
        var records: [JobRecord] = []
        for id in ids { records.append(try await kiln.wait(id, timeout: .seconds(60))) }
        #expect(records.allSatisfy { $0.status == .succeeded })
        // At the moment the last job started, how many were running at once?
        let lastStart = records.compactMap(\.startedAt).max()!
        let overlapping = records.filter { ($0.startedAt ?? 0) <= lastStart && ($0.finishedAt ?? 0) > lastStart }.count
        #expect(overlapping >= 90, "only \(overlapping) of 100 sleep jobs overlapped")
        try await cli.stop(worker)
    }

    @Test func cpuJobsRunInParallelProcessesWhileIOFlows() async throws {
        let worker = try await cli.startWorker(["--processes", "2"])
        let kiln = try client()
        defer { kiln.close() }
        try await eventually("pool has 2 children") { children(of: worker.pid).count == 2 }
        let spins = try await kiln.enqueueBatch((0..<2).map { _ in EnqueueRequest(type: "cpu.spin", payload: "{\"n\":600000000}") })
        try await eventually("both CPU jobs running") {
            try await kiln.queueStats().first?.running == 2
        }
        // While both pool processes are busy, I/O jobs still complete.
        let sleeps = try await kiln.enqueueBatch((0..<20).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":10}") })
        var sleepFinish: Int64 = 0
        for id in sleeps {
            let r = try await kiln.wait(id, timeout: .seconds(30))
            #expect(r.status == .succeeded)
            sleepFinish = max(sleepFinish, r.finishedAt ?? 0)
        }
        let a = try await kiln.wait(spins[0], timeout: .seconds(120))
        let b = try await kiln.wait(spins[1], timeout: .seconds(120))
        #expect(a.status == .succeeded && b.status == .succeeded)
        // They overlapped: each started before the other finished.
        #expect(a.startedAt! < b.finishedAt! && b.startedAt! < a.finishedAt!)
        #expect(sleepFinish < min(a.finishedAt!, b.finishedAt!), "I/O jobs waited for the CPU jobs")
        try await cli.stop(worker)
    }

    @Test func noLeaseWithoutAFreePoolProcess() async throws {
        let worker = try await cli.startWorker(["--processes", "1"])
        let kiln = try client()
        defer { kiln.close() }
        let ids = try await kiln.enqueueBatch((0..<3).map { _ in EnqueueRequest(type: "cpu.spin", payload: "{\"n\":100000000000}") })
        try await eventually("one CPU job running") { try await kiln.queueStats().first?.running == 1 }
        // I/O keeps flowing, and the other CPU jobs stay queued (not leased).
        #expect(try await kiln.enqueue("echo", json: "7").value(timeout: .seconds(20)) == .number(7))
        let stats = try await kiln.queueStats().first!
        #expect(stats.running == 1 && stats.queued == 2)
        for id in ids { _ = try await kiln.cancel(id) }
        try await cli.stop(worker)
    }

    @Test func timeoutsStopIOAndCPUJobs() async throws {
        let worker = try await cli.startWorker(["--processes", "1"])
        let kiln = try client()
        defer { kiln.close() }
        try await eventually("pool child up") { children(of: worker.pid).count == 1 }
        let before = children(of: worker.pid)
        let io = try await kiln.enqueue("sleep", json: "{\"ms\":30000}", options: JobOptions(timeout: .milliseconds(300), retries: 0))
        let cpu = try await kiln.enqueue("cpu.spin", json: "{\"n\":100000000000}", options: JobOptions(timeout: .milliseconds(300), retries: 0))
        let r1 = try await io.wait(timeout: .seconds(20))
        let r2 = try await cpu.wait(timeout: .seconds(20))
        #expect(r1.status == .timedOut && r1.error?.type == "timeout")
        #expect(r2.status == .timedOut && r2.error?.type == "timeout")
        #expect((r2.finishedAt! - r2.startedAt!) < 5000)
        // The CPU job's child was killed and replaced.
        for pid in before { try await eventually("old child \(pid) gone") { !alive(pid) } }
        try await eventually("replacement child") { children(of: worker.pid).count == 1 && children(of: worker.pid) != before }
        // A timed-out job with attempts left is retried.
        let retried = try await kiln.enqueue("sleep", json: "{\"ms\":30000}", options: JobOptions(timeout: .milliseconds(200), retries: 1))
        let r3 = try await retried.wait(timeout: .seconds(30))
        #expect(r3.status == .dead && r3.attempts == 2 && r3.error?.type == "timeout")
        try await cli.stop(worker)
    }

    @Test func retriesWithBackoffThenDeadLetter() async throws {
        let worker = try await cli.startWorker(["--processes", "0", "--retry-backoff", "100ms"])
        let kiln = try client()
        defer { kiln.close() }
        let job = try await kiln.enqueue("fail", json: "{\"message\":\"nope\"}", options: JobOptions(retries: 2))
        let r = try await job.wait(timeout: .seconds(30))
        #expect(r.status == .dead && r.attempts == 3 && r.maxAttempts == 3)
        #expect(r.error?.type == "error" && r.error?.message == "nope")
        // Backoff: 100 ms then 200 ms at least, between the three attempts.
        #expect(r.finishedAt! - r.enqueuedAt! >= 300)
        #expect(try await kiln.queueStats().first?.dead == 1)
        let once = try await kiln.enqueue("fail", options: JobOptions(retries: 0)).wait(timeout: .seconds(10))
        #expect(once.status == .failed && once.attempts == 1)
        try await cli.stop(worker)
    }

    @Test func cancelOfAJobWaitingToRetry() async throws {
        let worker = try await cli.startWorker(["--processes", "0", "--retry-backoff", "30s"])
        let kiln = try client()
        defer { kiln.close() }
        let job = try await kiln.enqueue("fail", options: JobOptions(retries: 3))
        try await eventually("job waiting to retry") { try await job.status() == .retrying }
        #expect(try await job.cancel() == .cancelled)
        let r = try await job.record()
        #expect(r.status == .cancelled && r.attempts == 1)
        #expect(try await kiln.queueStats().first?.retrying == 0)
        try await cli.stop(worker)
    }

    @Test func badJobsFailAndTheWorkerKeepsGoing() async throws {
        let worker = try await cli.startWorker(["--processes", "1"])
        let kiln = try client()
        defer { kiln.close() }
        let unknown = try await kiln.enqueue("no.such.type", options: JobOptions(retries: 0)).wait(timeout: .seconds(20))
        #expect(unknown.status == .failed && unknown.error?.type == "unknown_type")
        #expect(unknown.error?.message.contains("no.such.type") == true)
        let badPayload = try await kiln.enqueue("sleep", json: "{\"ms\":\"soon\"}").wait(timeout: .seconds(20))
        #expect(badPayload.status == .dead && badPayload.attempts == 1 && badPayload.error?.type == "bad_payload")  // not retried
        let badCPU = try await kiln.enqueue("cpu.spin", json: "[1]", options: JobOptions(retries: 0)).wait(timeout: .seconds(20))
        #expect(badCPU.status == .failed && badCPU.error?.type == "bad_payload")
        // Records written to Redis by hand (another producer's protocol v3 records on the ready list).
        let store = kiln.store, q = "default"
        func hand(_ id: String, _ change: (inout RawRecord) -> Void) async throws {
            var r = RawRecord()
            r.timeoutMs = .int(1000)
            change(&r)
            try await r.put(store, queue: q, id: id, ready: .io)
        }
        try await hand("hand-1") { $0.type = .nilValue }  // no type
        try await hand("hand-2") { $0.payload = .str("{oops") }
        try await hand("hand-3") { $0.payload = .str("1"); $0.kind = .str("gpu") }
        try await hand("hand-4") { $0.payload = .int(1) }  // a number where the JSON text belongs
        try await RawRecord.putBytes(store, queue: q, id: "hand-5", "no MessagePack here", ready: .io)
        // An id with no record at all: fetch drops it (nothing to run, nothing to finalize).
        try await kiln.connection.send(["RPUSH", store.keys.ready(q, .io), "hand-no-record"])
        for id in ["hand-1", "hand-2", "hand-3", "hand-4", "hand-5"] {
            let r = try await kiln.wait(id, timeout: .seconds(20))
            #expect(r.status == .failed, "\(id): \(r.statusText)")
            #expect(r.error?.type == "malformed_envelope", "\(id): \(String(describing: r.error))")
        }
        try await eventually("the ready list is drained") { try await kiln.connection.send(["LLEN", store.keys.ready(q, .io)]).int == 0 }
        #expect(try await store.record(queue: q, id: "hand-no-record") == nil)
        let crash = try await kiln.enqueue("cpu.crash", options: JobOptions(retries: 0)).wait(timeout: .seconds(20))
        #expect(crash.status == .failed && crash.error?.message == "worker process crashed: signal 6")
        // Still serving, I/O and CPU.
        #expect(worker.poll() == nil)
        #expect(try await kiln.enqueue("echo", json: "\"alive\"").value(timeout: .seconds(20)) == .string("alive"))
        let hash = try await kiln.enqueue("sha256", json: "{\"data\":\"\"}").value(timeout: .seconds(20))
        #expect(hash["sha256"] == .string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        try await cli.stop(worker)
    }

    @Test func killedWorkerLosesNothing() async throws {
        let a = try await cli.startWorker(["--processes", "1", "--lease", "1s"], name: "worker-a")
        let kiln = try client()
        defer { kiln.close() }
        try await eventually("pool child up") { children(of: a.pid).count == 1 }
        let poolChild = children(of: a.pid)[0]
        let io = try await kiln.enqueue("sleep", json: "{\"ms\":1500}")
        let cpu = try await kiln.enqueue("cpu.spin", json: "{\"n\":1000000000}")
        try await eventually("both running on worker-a") {
            let r1 = try await io.record(), r2 = try await cpu.record()
            return r1.status == .running && r2.status == .running && r1.worker == "worker-a" && r2.worker == "worker-a"
        }
        a.signal(SIGKILL)
        _ = try await a.wait(timeout: .seconds(10))
        // Its pool child notices the parent is gone and exits too.
        try await eventually("orphaned pool child exits", timeout: .seconds(10)) { !alive(poolChild) }
        let b = try await cli.startWorker(["--processes", "1", "--lease", "1s"], name: "worker-b")
        let r1 = try await io.wait(timeout: .seconds(60))
        let r2 = try await cpu.wait(timeout: .seconds(120))
        for r in [r1, r2] {
            #expect(r.status == .succeeded && r.worker == "worker-b" && r.attempts == 2, "\(r.json)")
        }
        try await cli.stop(b)
    }

    @Test func stalledWorkerCannotOverwriteTheNewerAttempt() async throws {
        let a = try await cli.startWorker(["--processes", "0", "--lease", "1s"], name: "stalled")
        let kiln = try client()
        defer { kiln.close() }
        let job = try await kiln.enqueue("sleep", json: "{\"ms\":1500}")
        try await eventually("running on the first worker") { try await job.record().worker == "stalled" }
        a.signal(SIGSTOP)
        let b = try await cli.startWorker(["--processes", "0", "--lease", "1s"], name: "fresh")
        let done = try await job.wait(timeout: .seconds(60))
        #expect(done.status == .succeeded && done.worker == "fresh" && done.attempts == 2)
        a.signal(SIGCONT)
        // The stalled attempt wakes up, finds its lease fenced off and writes nothing.
        try await eventually("stalled worker notices", timeout: .seconds(20)) {
            a.stderr.contains("lease was lost") || a.stderr.contains("result discarded")
        }
        let after = try await job.record()
        #expect(after == done, "the stale attempt changed the record")
        try await cli.stop(a)
        try await cli.stop(b)
    }

    @Test func gracefulShutdownFinishesOrHandsBack() async throws {
        let kiln = try client()
        defer { kiln.close() }
        // Within the grace period: the job finishes and the worker exits 0.
        let w1 = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "20s"])
        let short = try await kiln.enqueue("sleep", json: "{\"ms\":800}")
        try await eventually("running") { try await short.status() == .running }
        w1.signal(SIGTERM)
        #expect(try await w1.wait(timeout: .seconds(30)) == 0)
        #expect(try await short.record().status == .succeeded)
        // Past the grace period: running jobs are stopped and handed back, attempt not counted.
        let w2 = try await cli.startWorker(["--processes", "1", "--shutdown-grace", "300ms"])
        let long = try await kiln.enqueue("sleep", json: "{\"ms\":60000}")
        let spin = try await kiln.enqueue("cpu.spin", json: "{\"n\":100000000000}")
        try await eventually("both running") {
            let a = try await long.status(), b = try await spin.status()
            return a == .running && b == .running
        }
        w2.signal(SIGTERM)
        #expect(try await w2.wait(timeout: .seconds(30)) == 0)
        for j in [long, spin] {
            let r = try await j.record()
            #expect(r.status == .queued && r.attempts == 0, "\(r.json)")
        }
        #expect(try await kiln.queueStats().first == QueueStats(name: "default", queued: 2, running: 0, retrying: 0, dead: 0))
        _ = try await long.cancel()
        _ = try await spin.cancel()
    }
}
