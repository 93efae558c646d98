import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--cpu-prefetch`: CPU jobs held beyond the running ones, the next one in each process's pipe.
/// `sleep` and `http.get` are I/O handlers; enqueued with kind `cpu` they run in a pool process.
@Suite(.serialized) struct PrefetchTests {
    let redis = TestRedis.shared
    let prefix = TestRedis.uniquePrefix()
    var cli: KilnCLI { KilnCLI(redis: redis, prefix: prefix) }

    func client() throws -> KilnClient { try redis.client(prefix: prefix, knownKinds: ["sha256": .cpu, "cpu.crash": .cpu]) }

    func cpuSleep(_ ms: Int, timeout: Duration = .seconds(300), retries: Int = 0) -> EnqueueRequest {
        EnqueueRequest(type: "sleep", payload: "{\"ms\":\(ms)}", options: JobOptions(timeout: timeout, retries: retries, kind: .cpu))
    }

    func enqueue(_ kiln: KilnClient, _ request: EnqueueRequest) async throws -> String {
        try await kiln.enqueueBatch([request])[0]
    }

    func leased(_ kiln: KilnClient, _ n: Int) async throws {
        try await eventually("\(n) job(s) leased") { try await kiln.queueStats().first?.running == n }
    }

    @Test func manyShortJobsSucceedExactlyOnce() async throws {
        let kiln = try client()
        defer { kiln.close() }
        let ids = try await kiln.enqueueBatch((0..<2000).map { i in
            EnqueueRequest(type: "sha256", payload: "{\"data\":\"\(i)\"}", options: JobOptions(retries: 0, kind: .cpu))
        })
        let worker = try await cli.startWorker(["--processes", "2", "--cpu-prefetch", "64"])
        var records: [JobRecord] = []
        for id in ids { records.append(try await kiln.wait(id, timeout: .seconds(60))) }
        let bad = records.filter { $0.status != .succeeded || $0.attempts != 1 }
        #expect(bad.isEmpty, "\(bad.prefix(3).map(\.json))")
        #expect(worker.poll() == nil)
        try await cli.stop(worker)
    }

    /// Pool of 1, prefetch 2: three jobs of 300 ms with a 500 ms timeout are leased together. The
    /// third waits 600 ms before it runs, but its timeout starts when the process takes it.
    @Test func timeoutCountsFromTakeNotFromFetch() async throws {
        let kiln = try client()
        defer { kiln.close() }
        let worker = try await cli.startWorker(["--processes", "1", "--cpu-prefetch", "2", "--cpu-prefetch-low", "0"])
        // A warm-up job first: a process that is still starting when its first job is written
        // takes that job late, and the start-up would count against the 500 ms (a debug build on
        // a busy machine takes a few hundred ms to start).
        let warm = try await enqueue(kiln, cpuSleep(1))
        #expect(try await kiln.wait(warm, timeout: .seconds(30)).status == .succeeded)
        let ids = try await kiln.enqueueBatch((0..<3).map { _ in cpuSleep(300, timeout: .milliseconds(500)) })
        var records: [JobRecord] = []
        for id in ids { records.append(try await kiln.wait(id, timeout: .seconds(30))) }
        #expect(records.allSatisfy { $0.status == .succeeded && $0.attempts == 1 }, "\(records.map(\.json))")
        // Leased (started_at) at once, finished one after another: the last one held its lease
        // for well over its timeout before and while it ran.
        let held = records.map { ($0.finishedAt ?? 0) - ($0.startedAt ?? 0) }.max() ?? 0
        #expect(held > 500, "lease-to-finish times: \(records.map { ($0.finishedAt ?? 0) - ($0.startedAt ?? 0) })")
        try await cli.stop(worker)
    }

    /// A job waiting in the pipe and one waiting in the buffer are cancelled: they end
    /// `cancelled` and never run (the HTTP server sees no request); the process is not killed.
    @Test func cancelOfAWaitingJobNeverRunsIt() async throws {
        let server = try LoopbackHTTPServer(maxRequests: 4, lifetime: .seconds(60))
        defer { server.stop() }
        let kiln = try client()
        defer { kiln.close() }
        let worker = try await cli.startWorker(["--processes", "1", "--cpu-prefetch", "2", "--cpu-prefetch-low", "1"])
        let first = try await enqueue(kiln, cpuSleep(1500))
        try await leased(kiln, 1)
        let get = EnqueueRequest(type: "http.get", payload: "{\"url\":\"http://127.0.0.1:\(server.port)/\"}", options: JobOptions(retries: 0, kind: .cpu))
        let waiting = try await kiln.enqueueBatch([get, get])
        try await leased(kiln, 3)
        // Both while the first job still runs (a cancel of the piped one ends it when its process
        // is done with the job in front of it).
        for id in waiting { #expect(try await kiln.cancel(id, wait: .zero) == .stopping) }
        for id in waiting { #expect(try await kiln.wait(id, timeout: .seconds(10)).status == .cancelled) }
        #expect(try await kiln.wait(first, timeout: .seconds(30)).status == .succeeded)
        #expect(server.requestCount == 0)
        #expect(!worker.stderr.contains("killed worker process of a cancelled job"), "\(worker.stderr.suffix(1500))")
        // The same job, not cancelled, does reach the server: the check above could have failed.
        let control = try await enqueue(kiln, get)
        #expect(try await kiln.wait(control, timeout: .seconds(30)).status == .succeeded)
        #expect(server.requestCount == 1)
        try await cli.stop(worker)
    }

    /// Job k crashes its process while job k+1 waits behind it (in the pipe, or just being
    /// written): k+1 is not charged with the crash; it runs on the new process, first attempt.
    @Test func crashOfAJobDoesNotChargeTheNextOne() async throws {
        let kiln = try client()
        defer { kiln.close() }
        let worker = try await cli.startWorker(["--processes", "1", "--cpu-prefetch", "4", "--cpu-prefetch-low", "3"])
        let first = try await enqueue(kiln, cpuSleep(600))
        try await leased(kiln, 1)
        let crash = try await enqueue(kiln, EnqueueRequest(type: "cpu.crash", options: JobOptions(retries: 0, kind: .cpu)))
        try await leased(kiln, 2)   // in the pipe behind `first`
        let next = try await enqueue(kiln, cpuSleep(50))
        try await leased(kiln, 3)   // in the buffer; written to the pipe as `crash` starts
        #expect(try await kiln.wait(first, timeout: .seconds(30)).status == .succeeded)
        let c = try await kiln.wait(crash, timeout: .seconds(30))
        #expect(c.status == .failed && c.error?.type == "crash", "\(c.json)")
        let n = try await kiln.wait(next, timeout: .seconds(30))
        #expect(n.status == .succeeded && n.attempts == 1, "\(n.json)")
        #expect(worker.stderr.contains("1 job(s) the process had not started go to the next process, uncharged"), "\(worker.stderr.suffix(1500))")
        #expect(worker.poll() == nil)
        try await cli.stop(worker)
    }

    /// SIGTERM in the middle of a drain: the prefetched jobs are handed back once each, and
    /// nothing is fetched after the shutdown began (a fetch that raced the shutdown used to be
    /// handed back at once, freeing its slots for the next fetch: a release loop for the grace).
    @Test func shutdownMidDrainDoesNotFetchAgain() async throws {
        let kiln = try client()
        defer { kiln.close() }
        let ids = try await kiln.enqueueBatch((0..<3000).map { i in
            EnqueueRequest(type: "sha256", payload: "{\"data\":\"\(i)\"}", options: JobOptions(retries: 0, kind: .cpu))
        })
        let worker = try await cli.startWorker(["--processes", "2", "--cpu-prefetch", "64", "--shutdown-grace", "20s"])
        try await eventually("jobs are flowing") { try await kiln.record(ids[200]).status == .succeeded }
        worker.signal(SIGTERM)
        _ = try await worker.wait(timeout: .seconds(40))
        let handBacks = worker.stderr.components(separatedBy: "job handed back to the queue").count - 1
        #expect(handBacks <= 66, "\(handBacks) hand-backs for at most 66 jobs held")
        var queued = 0
        for id in ids {
            let r = try await kiln.record(id)
            if r.status == .queued { queued += 1 }
            #expect((r.status == .succeeded && r.attempts == 1) || (r.status == .queued && r.attempts == 0), "\(r.json)")
        }
        #expect(queued > 0)
    }

    /// SIGTERM with one job running and three prefetched: the running one finishes; the others
    /// go back to the queue without running and without using an attempt.
    @Test func gracefulShutdownHandsBackUnstartedJobs() async throws {
        let kiln = try client()
        defer { kiln.close() }
        let worker = try await cli.startWorker(["--processes", "1", "--cpu-prefetch", "3", "--cpu-prefetch-low", "2", "--shutdown-grace", "20s"])
        let first = try await enqueue(kiln, cpuSleep(1000))
        try await leased(kiln, 1)
        let waiting = try await kiln.enqueueBatch((0..<3).map { _ in cpuSleep(1000) })
        try await leased(kiln, 4)
        let clock = ContinuousClock()
        let start = clock.now
        worker.signal(SIGTERM)
        _ = try await worker.wait(timeout: .seconds(40))
        let took = clock.now - start
        #expect(try await kiln.record(first).status == .succeeded)
        for id in waiting {
            let r = try await kiln.record(id)
            #expect(r.status == .queued && r.attempts == 0, "\(r.json)")
        }
        // Only the running job was waited for (not four jobs of a second each).
        #expect(took < .seconds(3), "shutdown took \(took)")
        #expect(try await kiln.queueStats().first?.queued == 3)
        // Handed back once each: not fetched again after the shutdown began.
        let handBacks = worker.stderr.components(separatedBy: "job handed back to the queue").count - 1
        #expect(handBacks == 3, "\(handBacks) hand-backs: \(worker.stderr.suffix(1500))")
    }
}
