import Foundation
import Kiln
import KilnRedis
import Testing

/// Poison jobs must not starve the pool: a stream of jobs that crash their pool child runs next
/// to short CPU jobs on a pool of 2, and the short jobs still run at pool speed.
@Suite(.serialized) struct CrashStormTests {
    let redis = TestRedis.shared
    let prefix = TestRedis.uniquePrefix()
    var cli: KilnCLI { KilnCLI(redis: redis, prefix: prefix) }

    /// 200 `cpu.crash` jobs (2 attempts each: 400 child crashes) mixed with 200 short `cpu.spin`
    /// jobs. With the old respawn backoff (every crash a "failure", 50 ms doubling to 5 s per slot)
    /// the 400 crashes alone took over 15 minutes; each crash now gets a new child at once.
    @Test func crashingJobsDoNotThrottleThePool() async throws {
        let worker = try await cli.startWorker(["--processes", "2", "--retry-backoff", "100ms"])
        let kiln = try redis.client(prefix: prefix, knownKinds: ["cpu.spin": .cpu, "cpu.crash": .cpu])
        defer { kiln.close() }
        let clock = ContinuousClock()
        let start = clock.now
        let requests = (0..<400).map { i in
            i % 2 == 0
                ? EnqueueRequest(type: "cpu.crash", options: JobOptions(retries: 1, kind: .cpu))
                : EnqueueRequest(type: "cpu.spin", payload: "{\"n\":200000}", options: JobOptions(retries: 0, kind: .cpu))
        }
        let ids = try await kiln.enqueueBatch(requests)
        let deadline = start + .seconds(60)
        var records: [JobRecord] = []
        for id in ids {
            let left = deadline - clock.now
            guard left > .zero else { throw TestFailure("only \(records.count) of 400 jobs final after 60 s") }
            records.append(try await kiln.wait(id, timeout: left))
        }
        let elapsed = clock.now - start
        print("crash storm: 200 cpu.crash + 200 cpu.spin on 2 processes done in \(elapsed)")
        let spins = stride(from: 1, to: 400, by: 2).map { records[$0] }
        let crashes = stride(from: 0, to: 400, by: 2).map { records[$0] }
        #expect(spins.allSatisfy { $0.status == .succeeded }, "\(spins.filter { $0.status != .succeeded }.prefix(3).map(\.json))")
        for r in crashes {
            #expect(r.status == .dead && r.attempts == 2 && r.error?.type == "crash"
                    && r.error?.message == "worker process crashed: signal 6", "\(r.json)")
        }
        #expect(elapsed < .seconds(60))
        #expect(worker.poll() == nil, "the worker must survive its jobs")
        try await cli.stop(worker)
    }
}
