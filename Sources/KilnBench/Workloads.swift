import Foundation
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func ms(_ d: Duration) -> Double { seconds(d) * 1000 }

/// Nearest-rank percentile of a sorted array.
func percentile<T: Comparable>(_ sorted: [T], _ p: Double) -> T {
    let rank = Int((p * Double(sorted.count)).rounded(.up))
    return sorted[min(sorted.count - 1, max(0, rank - 1))]
}

/// The workloads. Each uses its own key prefix (`bench-w1`, …) on a freshly flushed Redis, and
/// stops its worker with SIGTERM before the next one starts.
struct Workloads {
    let env: BenchEnv
    let config: BenchConfig
    var report: BenchReport
    let queue = "default"

    static let kinds: [String: JobKind] = ["cpu.spin": .cpu, "sha256": .cpu, "cpu.crash": .cpu]

    func client(_ prefix: String) throws -> KilnClient {
        try KilnClient(options: KilnClientOptions(redis: try RedisConfiguration(url: env.redis.url), prefix: prefix, knownKinds: Self.kinds))
    }

    /// Bulk enqueue in chunks of `config.w1Chunk` (each chunk one pipeline); returns the ids.
    func bulkEnqueue(_ client: KilnClient, _ requests: [EnqueueRequest]) async throws -> [String] {
        var ids: [String] = []
        ids.reserveCapacity(requests.count)
        for chunk in stride(from: 0, to: requests.count, by: config.w1Chunk) {
            ids += try await client.enqueueBatch(Array(requests[chunk..<min(requests.count, chunk + config.w1Chunk)]))
        }
        return ids
    }

    mutating func detail(_ key: String, _ value: J) { report.details.append((key, value)) }

    // MARK: W1 enqueue

    mutating func w1() async throws {
        try await env.flushAll()
        let client = try client("bench-w1")
        defer { client.close() }
        _ = try await client.enqueue("noop")   // loads the script, opens the connection
        let n = config.w1Jobs
        let requests = (0..<n).map { _ in EnqueueRequest(type: "noop") }
        let before = try await env.commandStats()
        let cpu0 = (BenchEnv.cpuSeconds(pid: getpid()), BenchEnv.cpuSeconds(pid: env.redis.process.pid))
        let start = ContinuousClock.now
        let ids = try await bulkEnqueue(client, requests)
        let bulk = ContinuousClock.now - start
        let cpu1 = (BenchEnv.cpuSeconds(pid: getpid()), BenchEnv.cpuSeconds(pid: env.redis.process.pid))
        let after = try await env.commandStats()
        report.cpuBreakdown.append(("W1 bulk enqueue", [("producer (kiln-bench)", (cpu1.0 - cpu0.0) * 1e6 / Double(n)), ("redis-server", (cpu1.1 - cpu0.1) * 1e6 / Double(n))]))
        precondition(ids.count == n)
        let bulkRate = Double(n) / seconds(bulk)
        report.figures.append(Figure(workload: "W1", name: "bulk enqueue (enqueueBatch, chunks of \(config.w1Chunk)), \(n) jobs", value: bulkRate, unit: "jobs/s",
                                     target: .atLeast(250_000), limit: .lpush))
        report.commandBreakdown.append(("W1 bulk enqueue", BenchEnv.perJob(before: before, after: after, jobs: n)))

        try await env.flushAll()
        let m = config.w1SingleJobs
        _ = try await client.enqueue("noop")
        let cpu2 = (BenchEnv.cpuSeconds(pid: getpid()), BenchEnv.cpuSeconds(pid: env.redis.process.pid))
        let start1 = ContinuousClock.now
        for _ in 0..<m { _ = try await client.enqueue("noop") }
        let single = ContinuousClock.now - start1
        let cpu3 = (BenchEnv.cpuSeconds(pid: getpid()), BenchEnv.cpuSeconds(pid: env.redis.process.pid))
        report.cpuBreakdown.append(("W1 one at a time", [("producer (kiln-bench)", (cpu3.0 - cpu2.0) * 1e6 / Double(m)), ("redis-server", (cpu3.1 - cpu2.1) * 1e6 / Double(m))]))
        report.figures.append(Figure(workload: "W1", name: "one at a time (await each enqueue), \(m) jobs", value: Double(m) / seconds(single), unit: "jobs/s", limit: .lpush))
        detail("w1", .obj([("bulk_jobs", .int(n)), ("bulk_seconds", .num(seconds(bulk))), ("single_jobs", .int(m)), ("single_seconds", .num(seconds(single))),
                           ("single_us_per_job", .num(ms(single) * 1000 / Double(m)))]))
        try await env.flushAll()
    }

    // MARK: drains (W2, W3, W6)

    struct DrainResult {
        var times: BenchEnv.Times
        var perJob: [(String, Double)]
        var peakRSSMB: Double?
        var clientWall: Duration
        var jobs: Int
        var workerCPU: Double
        var redisCPU: Double
        /// Redis `used_memory` growth per job from before the enqueue to the drained queue (every
        /// record and result kept).
        var memoryPerJob: Double
        var cpuPerJob: [(String, Double)] {
            [("worker (+ pool children)", workerCPU * 1e6 / Double(jobs)), ("redis-server", redisCPU * 1e6 / Double(jobs))]
        }
        var rate: Double { Double(jobs) / (Double(times.spanMs) / 1000) }
    }

    /// Pre-enqueues `requests`, then starts one worker and waits until the queue is empty.
    /// Commands are counted from just before the worker starts to the moment the queue is empty.
    /// `failing`: how many of the jobs are meant to end `failed` (the rest must succeed).
    mutating func drain(prefix: String, requests: [EnqueueRequest], concurrency: Int, processes: Int, name: String, failing: Int = 0,
                        workerArgs: [String] = []) async throws -> DrainResult {
        try await env.flushAll()
        let client = try client(prefix)
        defer { client.close() }
        let memory0 = try await usedMemory()
        let ids = try await bulkEnqueue(client, requests)
        let before = try await env.commandStats()
        let redisCPU0 = BenchEnv.cpuSeconds(pid: env.redis.process.pid)
        let start = ContinuousClock.now
        let worker = try env.startWorker(prefix: prefix, concurrency: concurrency, processes: processes, name: name, extraArgs: workerArgs)
        var peak: Double?
        var workerCPU = 0.0
        var redisCPU = 0.0
        do {
            try await env.waitDrained(prefix: prefix, queue: queue, expected: ids.count, timeout: config.drainTimeout, worker: worker)
            peak = BenchEnv.memoryMB(pid: worker.pid, field: "VmHWM")
            workerCPU = BenchEnv.cpuSeconds(pid: worker.pid, children: true)
            redisCPU = BenchEnv.cpuSeconds(pid: env.redis.process.pid) - redisCPU0
        } catch {
            await env.stopWorker(worker)
            throw BenchError("\(error); worker log: \(env.workerLogTail(name))")
        }
        let wall = ContinuousClock.now - start
        let after = try await env.commandStats()
        let memory1 = try await usedMemory()
        await env.stopWorker(worker)
        let times = try await env.readTimes(prefix: prefix, queue: queue, ids: ids)
        if times.succeeded != ids.count - failing || times.other["failed", default: 0] != failing {
            throw BenchError("\(times.succeeded)/\(ids.count) succeeded; others: \(times.other); worker log: \(env.workerLogTail(name))")
        }
        return DrainResult(times: times, perJob: BenchEnv.perJob(before: before, after: after, jobs: ids.count), peakRSSMB: peak, clientWall: wall, jobs: ids.count,
                           workerCPU: workerCPU, redisCPU: redisCPU, memoryPerJob: Double(memory1 - memory0) / Double(max(1, ids.count)))
    }

    // MARK: W2 drain

    mutating func w2() async throws {
        let n = config.w2Jobs
        var results: [(Int, DrainResult)] = []
        for c in config.w2Concurrency {
            let r = try await drain(prefix: "bench-w2-c\(c)", requests: (0..<n).map { _ in EnqueueRequest(type: "noop") },
                                    concurrency: c, processes: 0, name: "w2-c\(c)")
            results.append((c, r))
            report.commandBreakdown.append(("W2 drain, --concurrency \(c)", r.perJob))
            report.cpuBreakdown.append(("W2 drain, --concurrency \(c)", r.cpuPerJob))
            detail("w2_c\(c)", .obj([("jobs", .int(n)), ("first_start_to_last_finish_ms", .int(Int(r.times.spanMs))), ("jobs_per_s", .num(r.rate)),
                                     ("client_wall_s", .num(seconds(r.clientWall))), ("worker_peak_rss_mb", .opt(r.peakRSSMB)),
                                     ("commands_per_job", .num(r.perJob.first?.1 ?? 0))]))
        }
        if let c10 = results.first(where: { $0.0 == 10 }) {
            report.figures.append(Figure(workload: "W2", name: "drain \(n) noop, --concurrency 10", value: c10.1.rate, unit: "jobs/s",
                                         target: .atLeast(30_000), limit: .rpop))
            report.figures.append(Figure(workload: "W2", name: "Redis memory per finished job, result kept (used_memory growth / \(n))", value: c10.1.memoryPerJob,
                                         unit: "bytes", target: .atMost(250)))
        }
        // Concurrency 10 with I/O prefetch (the next jobs already in the worker when a slot frees).
        let p = config.w2Prefetch
        do {
            let r = try await drain(prefix: "bench-w2-p\(p)", requests: (0..<n).map { _ in EnqueueRequest(type: "noop") },
                                    concurrency: 10, processes: 0, name: "w2-c10-p\(p)", workerArgs: ["--prefetch", String(p)])
            report.figures.append(Figure(workload: "W2", name: "drain \(n) noop, --concurrency 10 --prefetch \(p)", value: r.rate, unit: "jobs/s",
                                         limit: .rpop))
            report.commandBreakdown.append(("W2 drain, --concurrency 10 --prefetch \(p)", r.perJob))
            report.cpuBreakdown.append(("W2 drain, --concurrency 10 --prefetch \(p)", r.cpuPerJob))
            detail("w2_c10_p\(p)", .obj([("jobs", .int(n)), ("jobs_per_s", .num(r.rate)), ("commands_per_job", .num(r.perJob.first?.1 ?? 0))]))
        }
        if let best = results.max(by: { $0.1.rate < $1.1.rate }) {
            report.figures.append(Figure(workload: "W2", name: "drain \(n) noop, best of --concurrency \(config.w2Concurrency.map(String.init).joined(separator: "/"))",
                                         value: best.1.rate, unit: "jobs/s", target: .atLeast(100_000), limit: .rpop, note: "best: \(best.0)"))
            for (c, r) in results {
                report.figures.append(Figure(workload: "W2", name: "Redis commands per job, --concurrency \(c)", value: r.perJob.first?.1 ?? 0, unit: "cmds/job",
                                             target: .atMost(3)))
            }
        }
        try await env.flushAll()
    }

    // MARK: W3 I/O fan-out

    mutating func w3() async throws {
        let n = config.w3Jobs
        let sleep = config.w3SleepMs
        let r = try await drain(prefix: "bench-w3", requests: (0..<n).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":\(sleep)}") },
                                concurrency: config.w3Concurrency, processes: 0, name: "w3")
        let wall = Double(r.times.spanMs) / 1000
        report.figures.append(Figure(workload: "W3", name: "\(n) × sleep \(sleep) ms, --concurrency \(config.w3Concurrency): wall (first start to last finish)",
                                     value: wall, unit: "s", target: .atMost(0.5, sizeDependent: true)))
        report.figures.append(Figure(workload: "W3", name: "effective concurrency (N × \(Double(sleep) / 1000) s / wall)", value: Double(n) * Double(sleep) / 1000 / wall, unit: ""))
        if let rss = r.peakRSSMB {
            report.figures.append(Figure(workload: "W3", name: "worker peak RSS (VmHWM)", value: rss, unit: "MB", target: .atMost(150, sizeDependent: true)))
        }
        report.commandBreakdown.append(("W3 fan-out", r.perJob))
        report.cpuBreakdown.append(("W3 fan-out", r.cpuPerJob))
        detail("w3", .obj([("jobs", .int(n)), ("sleep_ms", .int(sleep)), ("wall_s", .num(wall)), ("client_wall_s", .num(seconds(r.clientWall))),
                           ("worker_peak_rss_mb", .opt(r.peakRSSMB)), ("commands_per_job", .num(r.perJob.first?.1 ?? 0))]))
        try await env.flushAll()
    }

    // MARK: W4 round trip

    mutating func w4() async throws {
        try await env.flushAll()
        let prefix = "bench-w4"
        let worker = try env.startWorker(prefix: prefix, concurrency: 256, processes: 0, name: "w4")
        let client = try client(prefix)
        defer { client.close() }
        do {
            try await w4Body(client: client, worker: worker, prefix: prefix)
        } catch {
            await env.stopWorker(worker)
            throw BenchError("\(error); worker log: \(env.workerLogTail("w4"))")
        }
        await env.stopWorker(worker)
        try await env.flushAll()
    }

    mutating func w4Body(client: KilnClient, worker: SpawnedProcess, prefix: String) async throws {
        // Ready: a first job goes through, then a warm-up.
        _ = try await client.enqueue("noop").wait(timeout: .seconds(60))
        for i in 0..<50 { _ = try await client.enqueue("echo", json: String(i)).value(timeout: .seconds(10)) }
        let idleRSS = BenchEnv.memoryMB(pid: worker.pid, field: "VmRSS")

        // The floor: a plain PING round trip on the same kind of pipelined connection.
        var pings: [Double] = []
        for _ in 0..<config.w4Rounds {
            let t = ContinuousClock.now
            _ = try await client.connection.send(["PING"])
            pings.append(ms(ContinuousClock.now - t))
        }
        pings.sort()

        var samples: [Double] = []
        samples.reserveCapacity(config.w4Rounds)
        let before = try await env.commandStats()
        for i in 0..<config.w4Rounds {
            let t = ContinuousClock.now
            let v = try await client.enqueue("echo", json: String(i)).value(timeout: .seconds(10))
            samples.append(ms(ContinuousClock.now - t))
            if v != .number(Double(i)) && i == 0 { throw BenchError("echo returned \(v), expected \(i)") }
        }
        let after = try await env.commandStats()
        samples.sort()
        let n = samples.count
        report.figures.append(Figure(workload: "W4", name: "library enqueue → value(timeout:), \(n) sequential: p50", value: percentile(samples, 0.5), unit: "ms", target: .atMost(0.25)))
        report.figures.append(Figure(workload: "W4", name: "library round trip p99", value: percentile(samples, 0.99), unit: "ms", target: .atMost(0.6)))
        report.figures.append(Figure(workload: "W4", name: "library round trip max", value: samples.last!, unit: "ms"))
        report.figures.append(Figure(workload: "W4", name: "floor: PING round trip on a KilnRedis connection, p50", value: percentile(pings, 0.5), unit: "ms"))
        report.commandBreakdown.append(("W4 round trip (client + worker)", BenchEnv.perJob(before: before, after: after, jobs: n)))

        // The CLI, process start included.
        var cliEnv = ["KILN_REDIS_URL": env.redis.url, "KILN_PREFIX": prefix]
        if let path = ProcessInfo.processInfo.environment["PATH"] { cliEnv["PATH"] = path }
        var cli: [Double] = []
        let out = "\(env.dir)/cli-out.txt"
        for i in 0..<(config.w4CLIRuns + 3) {
            let (code, elapsed, stdout) = try BenchEnv.runTimed([env.kilnPath, "enqueue", "echo", "1", "--wait"], environment: cliEnv, stdoutPath: out)
            guard code == 0, stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1" else {
                let err = (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? ""
                throw BenchError("kiln enqueue echo 1 --wait exited \(code), printed '\(stdout.prefix(100))' \(err.prefix(200))")
            }
            if i >= 3 { cli.append(ms(elapsed)) }   // the first runs warm the page cache
        }
        cli.sort()
        report.figures.append(Figure(workload: "W4", name: "CLI `kiln enqueue echo 1 --wait`, \(cli.count) runs: p50", value: percentile(cli, 0.5), unit: "ms", target: .atMost(20)))
        report.figures.append(Figure(workload: "W4", name: "CLI p99", value: percentile(cli, 0.99), unit: "ms"))
        detail("w4", .obj([
            ("rounds", .int(n)), ("library_ms", .obj([("p50", .num(percentile(samples, 0.5))), ("p90", .num(percentile(samples, 0.9))),
                                                      ("p99", .num(percentile(samples, 0.99))), ("max", .num(samples.last!)), ("min", .num(samples.first!))])),
            ("ping_ms", .obj([("p50", .num(percentile(pings, 0.5))), ("p99", .num(percentile(pings, 0.99)))])),
            ("cli_runs", .int(cli.count)), ("cli_ms", .obj([("p50", .num(percentile(cli, 0.5))), ("p99", .num(percentile(cli, 0.99))), ("min", .num(cli.first!)), ("max", .num(cli.last!))])),
            ("worker_idle_rss_mb", .opt(idleRSS)),
        ]))
    }

    // MARK: W5 CPU

    mutating func w5() async throws {
        try await env.flushAll()
        let prefix = "bench-w5"
        let procs = config.w5Processes
        let worker = try env.startWorker(prefix: prefix, concurrency: config.w5Concurrency, processes: procs, name: "w5")
        let client = try client(prefix)
        defer { client.close() }
        do {
            try await w5Body(client: client, prefix: prefix, procs: procs)
        } catch {
            await env.stopWorker(worker)
            throw BenchError("\(error); worker log: \(env.workerLogTail("w5"))")
        }
        await env.stopWorker(worker)
        try await env.flushAll()
    }

    /// A job's run time from its record (started_at to finished_at).
    func runMs(_ client: KilnClient, _ n: Int) async throws -> Int64 {
        let r = try await client.enqueue("cpu.spin", json: "{\"n\":\(n)}", options: JobOptions(kind: .cpu)).wait(timeout: .seconds(300))
        guard r.status == .succeeded, let s = r.startedAt, let f = r.finishedAt else { throw BenchError("cpu.spin ended \(r.statusText)") }
        return max(1, f - s)
    }

    mutating func w5Body(client: KilnClient, prefix: String, procs: Int) async throws {
        _ = try await client.enqueue("noop").wait(timeout: .seconds(60))
        // Calibrate n for a job of w5JobSeconds: a probe, then a second estimate from a longer run.
        let probeN = 20_000_000
        let probeMs = try await runMs(client, probeN)
        var n = max(1_000_000, Int(Double(probeN) * config.w5JobSeconds * 1000 / Double(probeMs)))
        let singleMs = try await runMs(client, n)
        n = max(1_000_000, Int(Double(n) * config.w5JobSeconds * 1000 / Double(singleMs)))
        // One job's time alone: the better of two runs, so that a slow moment on a shared machine
        // does not inflate the speed-up (a single run once gave 1179 ms against 1030 ms per job
        // in the parallel batch, and so a speed-up above 2 on 2 cores).
        let oneMs = min(try await runMs(client, n), try await runMs(client, n))

        // Baseline: the same sleeps with the pool idle.
        let baseIDs = try await client.enqueueBatch((0..<config.w5Sleeps).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":10}") })
        try await env.waitDrained(prefix: prefix, queue: queue, expected: baseIDs.count, timeout: config.drainTimeout, worker: nil)
        let base = try await env.readTimes(prefix: prefix, queue: queue, ids: baseIDs)
        let baseDelays = base.rows.map { Double($0.finished - $0.enqueued - 10) }.sorted()

        let jobs = config.w5Jobs
        let busy0 = BenchEnv.machineCPU()
        let start = ContinuousClock.now
        let cpuIDs = try await client.enqueueBatch((0..<jobs).map { _ in EnqueueRequest(type: "cpu.spin", payload: "{\"n\":\(n)}", options: JobOptions(kind: .cpu)) })
        let sleepIDs = try await client.enqueueBatch((0..<config.w5Sleeps).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":10}") })
        try await env.waitDrained(prefix: prefix, queue: queue, expected: jobs + sleepIDs.count, timeout: config.drainTimeout, worker: nil)
        let clientWall = ContinuousClock.now - start
        let busy1 = BenchEnv.machineCPU()
        let machineBusy = (busy1.busy - busy0.busy) / max(0.001, seconds(clientWall))
        let cpu = try await env.readTimes(prefix: prefix, queue: queue, ids: cpuIDs)
        let sleeps = try await env.readTimes(prefix: prefix, queue: queue, ids: sleepIDs)
        guard cpu.succeeded == jobs, sleeps.succeeded == sleepIDs.count else {
            throw BenchError("cpu \(cpu.succeeded)/\(jobs), sleeps \(sleeps.succeeded)/\(sleepIDs.count) succeeded (\(cpu.other), \(sleeps.other))")
        }
        let wallMs = Double(cpu.spanMs)
        let speedup = Double(oneMs) * Double(jobs) / wallMs
        let delays = sleeps.rows.map { Double($0.finished - $0.enqueued - 10) }.sorted()
        // How many CPU jobs ran at once (from the records), and how long each took meanwhile: if
        // they overlap as they should but each took longer than alone, the cores were busy.
        var edges: [(Int64, Int)] = []
        for r in cpu.rows { edges += [(r.started, 1), (r.finished, -1)] }
        edges.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var atOnce = 0
        var maxAtOnce = 0
        for e in edges { atOnce += e.1; maxAtOnce = max(maxAtOnce, atOnce) }
        let meanRun = Double(cpu.rows.map { $0.finished - $0.started }.reduce(0, +)) / Double(max(1, cpu.rows.count))
        // Were the sleeps really concurrent with the CPU jobs?
        let overlapped = sleeps.rows.filter { $0.finished <= cpu.lastFinish }.count
        report.figures.append(Figure(workload: "W5", name: "\(jobs) × cpu.spin (~\(oneMs) ms each) over \(procs) processes: wall", value: wallMs / 1000, unit: "s"))
        report.figures.append(Figure(workload: "W5", name: "speed-up vs one job × \(jobs)", value: speedup, unit: "×", target: .atLeast(procs == 2 ? 1.85 : Double(procs) * 0.925),
                                     note: "at most \(maxAtOnce) ran at once; each took \(Int(meanRun)) ms vs \(oneMs) ms alone"))
        report.figures.append(Figure(workload: "W5", name: "\(delays.count) × sleep 10 ms meanwhile: p99 completion delay", value: percentile(delays, 0.99), unit: "ms",
                                     target: .atMost(20), note: "\(overlapped)/\(delays.count) finished before the last CPU job"))
        report.figures.append(Figure(workload: "W5", name: "the same sleeps with the pool idle: p99 completion delay", value: percentile(baseDelays, 0.99), unit: "ms"))
        detail("w5", .obj([
            ("idle_sleep_delay_ms", .obj([("p50", .num(percentile(baseDelays, 0.5))), ("p99", .num(percentile(baseDelays, 0.99)))])),
            ("spin_n", .int(n)), ("one_job_ms", .int(Int(oneMs))), ("calibration_ms", .arr([.int(Int(probeMs)), .int(Int(singleMs))])),
            ("cpu_jobs", .int(jobs)), ("processes", .int(procs)), ("wall_ms", .num(wallMs)), ("client_wall_ms", .num(ms(clientWall))), ("speedup", .num(speedup)),
            ("sleep_delay_ms", .obj([("p50", .num(percentile(delays, 0.5))), ("p99", .num(percentile(delays, 0.99))), ("max", .num(delays.last ?? 0))])),
            ("sleeps_finished_during_cpu", .int(overlapped)), ("cpu_jobs_at_once_max", .int(maxAtOnce)), ("cpu_job_mean_run_ms", .num(meanRun)),
            ("machine_cpu_seconds_per_second", .num(machineBusy)),
        ]))
    }
}
