import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--prefetch`: I/O jobs held beyond `--concurrency`, so the next ones are in the worker when a
/// slot frees. At most `--concurrency` run at once, a timeout starts when the job gets a slot, and
/// jobs not started at a graceful shutdown go back to the queue unrun.
@Suite(.serialized) struct IOPrefetchTests {
    let redis = TestRedis.shared
    let prefix = TestRedis.uniquePrefix()
    var cli: KilnCLI { KilnCLI(redis: redis, prefix: prefix) }

    func sleep(_ ms: Int, timeout: Duration = .seconds(300)) -> EnqueueRequest {
        EnqueueRequest(type: "sleep", payload: "{\"ms\":\(ms)}", options: JobOptions(timeout: timeout, retries: 0))
    }

    /// Concurrency 2, prefetch 6: eight 300 ms sleeps with a 500 ms timeout are all leased at
    /// once, but they run two at a time (their ends spread over four waves, not one), and none
    /// times out although the last ones wait 900 ms for a slot.
    @Test func concurrencyStillBoundsRunningJobsAndTimeoutsStartAtTheSlot() async throws {
        let kiln = try redis.client(prefix: prefix)
        defer { kiln.close() }
        let ids = try await kiln.enqueueBatch((0..<8).map { _ in sleep(300, timeout: .milliseconds(500)) })
        let worker = try await cli.startWorker(["--concurrency", "2", "--prefetch", "6"])
        var records: [JobRecord] = []
        for id in ids { records.append(try await kiln.wait(id, timeout: .seconds(30))) }
        #expect(records.allSatisfy { $0.status == .succeeded && $0.attempts == 1 }, "\(records.map(\.json))")
        let ends = records.compactMap(\.finishedAt)
        let spread = (ends.max() ?? 0) - (ends.min() ?? 0)
        // Two at a time: the ends come in four waves 300 ms apart (all at once would be ~0 ms).
        #expect(spread >= 800, "8 jobs of 300 ms ended within \(spread) ms: more than 2 ran at once")
        #expect(worker.poll() == nil)
        try await cli.stop(worker)
    }

    /// SIGTERM with one job running and three waiting in the worker: the running one finishes,
    /// the others go back to the queue without running and without using an attempt.
    @Test func gracefulShutdownHandsBackUnstartedJobs() async throws {
        let kiln = try redis.client(prefix: prefix)
        defer { kiln.close() }
        let worker = try await cli.startWorker(["--concurrency", "1", "--prefetch", "3", "--shutdown-grace", "20s"])
        let first = try await kiln.enqueueBatch([sleep(1000)])[0]
        try await eventually("first job leased") { try await kiln.queueStats().first?.running == 1 }
        let waiting = try await kiln.enqueueBatch((0..<3).map { _ in sleep(1000) })
        try await eventually("all four leased") { try await kiln.queueStats().first?.running == 4 }
        worker.signal(SIGTERM)
        _ = try await worker.wait(timeout: .seconds(40))
        #expect(try await kiln.record(first).status == .succeeded)
        for id in waiting {
            let r = try await kiln.record(id)
            #expect(r.status == .queued && r.attempts == 0, "\(r.json)")
        }
        #expect(try await kiln.queueStats().first?.queued == 3)
        let handBacks = worker.stderr.components(separatedBy: "job handed back to the queue").count - 1
        #expect(handBacks == 3, "\(handBacks) hand-backs: \(worker.stderr.suffix(1500))")
    }

    @Test func badPrefetchIsOneClearLine() async throws {
        let r = try await cli.run(["worker", "--prefetch", "-1"], timeout: .seconds(30))
        #expect(r.code != 0 && r.stderr.contains("--prefetch must be from 0 to 100000"), "\(r.code) \(r.stderr)")
    }
}
