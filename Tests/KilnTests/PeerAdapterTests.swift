import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `kiln-peer`, the peer benchmark harness's adapter (Sources/KilnPeer), run as the harness runs
/// it: the built binary against a real Redis, configured by BENCH_* variables, reading the one
/// JSON line each command prints and the probe records the jobs write.
@Suite(.serialized) struct PeerAdapterTests {
    let redis = TestRedis.shared

    /// One harness "case": a queue, key prefix and probe directory of its own.
    struct Case {
        let prefix = TestRedis.uniquePrefix()
        let probeDir = NSTemporaryDirectory() + "kiln-peer-probe-\(UUID().uuidString)"
        let env: [String: String]

        init(redis: TestRedis) throws {
            try FileManager.default.createDirectory(atPath: probeDir, withIntermediateDirectories: true)
            env = ["BENCH_REDIS_URL": redis.url, "BENCH_QUEUE": "benchq", "BENCH_PROBE_DIR": probeDir]
        }

        /// Runs `kiln-peer ARGS --prefix P` to completion.
        func run(_ args: String...) async throws -> KilnCLI.Result {
            let p = try ChildProcess([PeerBinary.path] + args + (args.first == "info" || args.first == "cpu-baseline" ? [] : ["--prefix", prefix]), environment: env)
            let code = try await p.wait(timeout: .seconds(30))
            return KilnCLI.Result(code: code, stdout: p.stdout, stderr: p.stderr)
        }

        /// The JSON object on the last stdout line.
        func json(_ r: KilnCLI.Result) throws -> [String: Any] {
            let last = try #require(r.stdout.split(separator: "\n").last, "no output: \(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        }

        func pending() async throws -> Int {
            let r = try await run("pending")
            #expect(r.code == 0, "pending: \(r.stderr)")
            return try #require(try json(r)["pending"] as? Int)
        }

        func startWorker(_ args: String...) throws -> ChildProcess {
            try ChildProcess([PeerBinary.path, "worker", "--prefix", prefix] + args, environment: env)
        }

        /// The probe records so far (each must be exactly 36 bytes: "%17.6f %17.6f\n").
        func probeRecords() throws -> [(start: Double, end: Double)] {
            guard let data = FileManager.default.contents(atPath: probeDir + "/probe.log") else { return [] }
            #expect(data.count % 36 == 0, "probe.log is \(data.count) bytes, not a multiple of 36")
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
                let f = line.split(separator: " ").compactMap { Double($0) }
                #expect(line.count == 35 && f.count == 2, "bad probe record \(line.debugDescription)")
                return (f.first ?? 0, f.last ?? 0)
            }
        }

        /// Waits (polling, with a deadline) until `n` probe records exist and `pending` is 0.
        func drained(_ n: Int, worker: ChildProcess) async throws {
            try await eventually("\(n) jobs not drained: \((try? probeRecords().count) ?? 0) probe records; worker: \(worker.output.suffix(1000))", timeout: .seconds(30)) {
                if worker.poll() != nil { throw TestFailure("worker exited early: \(worker.output.suffix(1500))") }
                guard try probeRecords().count >= n else { return false }
                return try await pending() == 0
            }
        }

        func stop(_ worker: ChildProcess) async throws {
            worker.signal(SIGTERM)
            let code = try await worker.wait(timeout: .seconds(20))
            #expect(code == 0, "worker exit \(code) after SIGTERM: \(worker.output.suffix(1000))")
        }
    }

    @Test func bulkEnqueueThenWorkerDrainsWithAProbeRecordPerJob() async throws {
        let c = try Case(redis: redis)
        let e = try await c.run("enqueue", "--type", "noop", "--count", "300", "--mode", "bulk")
        #expect(e.code == 0, "enqueue: \(e.stderr)")
        let out = try c.json(e)
        #expect(out["count"] as? Int == 300)
        let t0 = try #require(out["t_start"] as? Double), t1 = try #require(out["t_end"] as? Double)
        #expect(t0 <= t1 && abs(t0 - Date().timeIntervalSince1970) < 60, "t_start \(t0), t_end \(t1) are not Unix seconds")
        #expect(try await c.pending() == 300)

        let worker = try c.startWorker("--concurrency", "10", "--processes", "1")
        try await c.drained(300, worker: worker)
        let records = try c.probeRecords()
        #expect(records.count == 300, "each job ran once")
        #expect(records.allSatisfy { $0.start <= $0.end && $0.start >= t0 - 1 })
        try await c.stop(worker)
    }

    @Test func cpuJobsRunInThePoolAndSleepJobsConcurrently() async throws {
        let c = try Case(redis: redis)
        for args in [["cpu", "2", "single", "100000"], ["sleep", "20", "concurrent", "0.2"]] {
            let e = try await c.run("enqueue", "--type", args[0], "--count", args[1], "--mode", args[2], "--arg", args[3])
            #expect(e.code == 0, "enqueue \(args): \(e.stderr)")
        }
        let worker = try c.startWorker("--concurrency", "20", "--processes", "1")
        try await c.drained(22, worker: worker)
        // 20 sleeps of 0.2 s with 20 slots overlap: their windows share an instant.
        let sleeps = try c.probeRecords().filter { $0.end - $0.start >= 0.19 }
        #expect(sleeps.count == 20)
        #expect(sleeps.map { $0.start }.max()! < sleeps.map { $0.end }.min()!, "sleep jobs did not run at once")
        try await c.stop(worker)

        let b = try await c.run("cpu-baseline", "--arg", "10")
        #expect(b.code == 0, "cpu-baseline: \(b.stderr)")
        // sum of i*i % 7 for i < 10 = 0+1+4+2+2+4+1+0+1+4
        #expect(try c.json(b)["result"] as? Int == 19)
        #expect(try c.json(b)["seconds"] as? Double != nil)
    }

    @Test func roundtripPrintsOneLatencyPerRoundTrip() async throws {
        let c = try Case(redis: redis)
        let worker = try c.startWorker("--concurrency", "10", "--processes", "1")
        let r = try await c.run("roundtrip", "--count", "5", "--warmup", "1")
        #expect(r.code == 0, "roundtrip: \(r.stderr)")
        let out = try c.json(r)
        let lat = try #require(out["latencies_ms"] as? [Double])
        #expect(lat.count == 5 && lat.allSatisfy { $0 > 0 && $0 < 30_000 }, "\(lat)")
        #expect((out["mechanism"] as? String)?.contains("JobHandle") == true)
        try await c.stop(worker)
    }

    @Test func infoNamesTheModes() async throws {
        let c = try Case(redis: redis)
        let r = try await c.run("info")
        #expect(r.code == 0, "info: \(r.stderr)")
        let out = try c.json(r)
        #expect(out["name"] as? String == "kiln")
        #expect(out["enqueue_modes"] as? [String] == ["bulk", "concurrent", "single"])
    }

    @Test(arguments: [
        ["enqueue", "--type", "bogus", "--count", "1"],
        ["enqueue", "--type", "noop", "--count", "-1"],
        ["enqueue", "--type", "cpu", "--count", "1", "--arg", "lots"],
        ["enqueue", "--type", "noop", "--count", "1", "--mode", "sideways"],
        ["worker", "--concurrency", "0"],
        ["worker", "--pool-nice", "20"],
        ["roundtrip", "--count", "0"],
        ["frobnicate"],
    ])
    func badFlagsGiveOneLineErrorAndExit2(_ args: [String]) async throws {
        let c = try Case(redis: redis)
        let p = try ChildProcess([PeerBinary.path] + args, environment: c.env)
        let code = try await p.wait(timeout: .seconds(30))
        #expect(code == 2, "\(args): exit \(code), stderr \(p.stderr.debugDescription)")
        #expect(p.stdout.isEmpty, "\(args): stdout \(p.stdout.debugDescription)")
        let lines = p.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("kiln-peer: error: "), "\(args): stderr \(p.stderr.debugDescription)")
    }
}

/// Where the built `kiln-peer` binary is: $KILN_PEER, else next to the `kiln` binary the tests use.
enum PeerBinary {
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["KILN_PEER"] { return p }
        return URL(fileURLWithPath: KilnBinary.path).deletingLastPathComponent().appendingPathComponent("kiln-peer").path
    }()
}
