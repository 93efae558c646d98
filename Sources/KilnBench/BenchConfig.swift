import Foundation

/// Sizes and settings of a bench run, from the environment. `BENCH_SCALE` (default 1.0) scales
/// every job count and the CPU job length; each `BENCH_W*_…` variable overrides one size.
struct BenchConfig: Sendable {
    let scale: Double
    let only: Set<String>           // BENCH_ONLY=w1,w4 runs a subset; empty = all
    let outDir: String              // BENCH_OUT, default bench-results
    let redisBenchRequests: Int     // BENCH_REDIS_N: -n of redis-benchmark
    let w1Jobs: Int                 // bulk enqueue
    let w1SingleJobs: Int           // one-at-a-time enqueue
    let w1Chunk: Int                // enqueueBatch chunk size
    let w2Jobs: Int
    let w2Concurrency: [Int]        // BENCH_W2_CONCURRENCY=10,100,400,1000 (10 is always run)
    let w3Jobs: Int
    let w3Concurrency: Int
    let w3SleepMs: Int
    let w4Rounds: Int
    let w4CLIRuns: Int
    let w5Jobs: Int
    let w5Processes: Int
    let w5JobSeconds: Double
    let w5Sleeps: Int
    let w5Concurrency: Int
    let w6Jobs: Int
    let w7Jobs: Int                 // BENCH_W7_JOBS: jobs one client waits on at once
    let w6Processes: Int
    /// Jobs of the W6 variant where every 10th job crashes its pool child (`cpu.crash`).
    let w6CrashJobs: Int
    /// `--cpu-prefetch` of the W6 line with prefetch on (`BENCH_W6_PREFETCH`, default 256).
    let w6Prefetch: Int
    /// `--prefetch` of the W2 line at concurrency 10 with I/O prefetch (`BENCH_W2_PREFETCH`, default 40).
    let w2Prefetch: Int
    let drainTimeout: Duration

    static func fromEnvironment() throws -> BenchConfig {
        let env = ProcessInfo.processInfo.environment
        func double(_ name: String, _ def: Double) throws -> Double {
            guard let t = env[name], !t.isEmpty else { return def }
            guard let v = Double(t), v > 0 else { throw BenchError("$\(name) must be a positive number, got '\(t)'") }
            return v
        }
        let scale = try double("BENCH_SCALE", 1.0)
        func count(_ name: String, _ full: Int, min lo: Int) throws -> Int {
            if let t = env[name], !t.isEmpty {
                guard let v = Int(t), v > 0 else { throw BenchError("$\(name) must be a positive whole number, got '\(t)'") }
                return v
            }
            return max(lo, Int((Double(full) * scale).rounded()))
        }
        /// A setting that does not scale.
        func fixed(_ name: String, _ def: Int) throws -> Int {
            guard let t = env[name], !t.isEmpty else { return def }
            guard let v = Int(t), v > 0 else { throw BenchError("$\(name) must be a positive whole number, got '\(t)'") }
            return v
        }
        func list(_ name: String, _ def: [Int]) throws -> [Int] {
            guard let t = env[name], !t.isEmpty else { return def }
            let v = t.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.allSatisfy({ $0 > 0 }) else { throw BenchError("$\(name) must be a comma-separated list of positive numbers, got '\(t)'") }
            return v
        }
        var w2c = try list("BENCH_W2_CONCURRENCY", [10, 100, 400, 1000])
        if !w2c.contains(10) { w2c.insert(10, at: 0) }
        return BenchConfig(
            scale: scale,
            only: Set((env["BENCH_ONLY"] ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }),
            outDir: env["BENCH_OUT"].flatMap { $0.isEmpty ? nil : $0 } ?? "bench-results",
            redisBenchRequests: try count("BENCH_REDIS_N", 100_000, min: 20_000),
            w1Jobs: try count("BENCH_W1_JOBS", 100_000, min: 1000),
            w1SingleJobs: try count("BENCH_W1_SINGLE_JOBS", 100_000, min: 500),
            w1Chunk: try fixed("BENCH_W1_CHUNK", 10_000),
            w2Jobs: try count("BENCH_W2_JOBS", 100_000, min: 1000),
            w2Concurrency: w2c,
            w3Jobs: try count("BENCH_W3_JOBS", 10_000, min: 100),
            w3Concurrency: try fixed("BENCH_W3_CONCURRENCY", 10_000),
            w3SleepMs: 100,
            w4Rounds: try count("BENCH_W4_ROUNDS", 1000, min: 100),
            w4CLIRuns: try count("BENCH_W4_CLI_RUNS", 50, min: 10),
            w5Jobs: try fixed("BENCH_W5_JOBS", 8),
            w5Processes: try fixed("BENCH_W5_PROCESSES", 2),
            w5JobSeconds: try double("BENCH_W5_JOB_SECONDS", max(0.1, 1.0 * scale)),
            w5Sleeps: try count("BENCH_W5_SLEEPS", 1000, min: 50),
            w5Concurrency: try fixed("BENCH_W5_CONCURRENCY", 2000),
            w6Jobs: try count("BENCH_W6_JOBS", 10_000, min: 500),
            w7Jobs: try count("BENCH_W7_JOBS", 10_000, min: 1000),
            w6Processes: try fixed("BENCH_W6_PROCESSES", 2),
            w6CrashJobs: try count("BENCH_W6_CRASH_JOBS", 2000, min: 200),
            w6Prefetch: try fixed("BENCH_W6_PREFETCH", 256),
            w2Prefetch: try fixed("BENCH_W2_PREFETCH", 40),
            drainTimeout: .seconds(try double("BENCH_DRAIN_TIMEOUT", 300)))
    }

    func runs(_ workload: String) -> Bool { only.isEmpty || only.contains(workload) }

    /// Sizes as JSON, for the results file.
    var json: J {
        .obj([
            ("scale", .num(scale)), ("redis_benchmark_requests", .int(redisBenchRequests)),
            ("w1_bulk_jobs", .int(w1Jobs)), ("w1_single_jobs", .int(w1SingleJobs)), ("w1_chunk", .int(w1Chunk)),
            ("w2_jobs", .int(w2Jobs)), ("w2_concurrency", .arr(w2Concurrency.map { .int($0) })),
            ("w3_jobs", .int(w3Jobs)), ("w3_concurrency", .int(w3Concurrency)), ("w3_sleep_ms", .int(w3SleepMs)),
            ("w4_rounds", .int(w4Rounds)), ("w4_cli_runs", .int(w4CLIRuns)),
            ("w5_cpu_jobs", .int(w5Jobs)), ("w5_processes", .int(w5Processes)), ("w5_job_seconds", .num(w5JobSeconds)),
            ("w5_sleeps", .int(w5Sleeps)), ("w5_concurrency", .int(w5Concurrency)),
            ("w6_jobs", .int(w6Jobs)), ("w7_jobs", .int(w7Jobs)), ("w6_processes", .int(w6Processes)), ("w6_crash_jobs", .int(w6CrashJobs)), ("w6_prefetch", .int(w6Prefetch)), ("w2_prefetch", .int(w2Prefetch)),
        ])
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
