import Foundation
import Kiln
import KilnRedis
import KilnWorker

extension Workloads {
    // MARK: W6 pool overhead

    mutating func w6() async throws {
        let n = config.w6Jobs
        let procs = config.w6Processes
        let r = try await drain(prefix: "bench-w6", requests: (0..<n).map { _ in EnqueueRequest(type: "sha256", payload: "{\"data\":\"x\"}", options: JobOptions(kind: .cpu)) },
                                concurrency: 256, processes: procs, name: "w6")
        report.figures.append(Figure(workload: "W6", name: "\(n) × sha256 {\"data\":\"x\"} over \(procs) pool processes", value: r.rate, unit: "jobs/s",
                                     target: .atLeast(20_000), limit: .rpop))
        report.commandBreakdown.append(("W6 pool jobs", r.perJob))
        report.cpuBreakdown.append(("W6 pool jobs", r.cpuPerJob))
        detail("w6", .obj([("jobs", .int(n)), ("processes", .int(procs)), ("first_start_to_last_finish_ms", .int(Int(r.times.spanMs))), ("jobs_per_s", .num(r.rate)),
                           ("client_wall_s", .num(seconds(r.clientWall))), ("worker_peak_rss_mb", .opt(r.peakRSSMB)), ("commands_per_job", .num(r.perJob.first?.1 ?? 0))]))
        try await env.flushAll()
        try await w6Prefetch()
        try await w6Crashing(plainRate: r.rate)
    }

    /// W6 again with `--cpu-prefetch` (default 256, low-water mark a quarter of it): batched
    /// fetches, and each pool process finds its next job in its pipe.
    mutating func w6Prefetch() async throws {
        let n = config.w6Jobs
        let procs = config.w6Processes
        let p = config.w6Prefetch
        let r = try await drain(prefix: "bench-w6p", requests: (0..<n).map { _ in EnqueueRequest(type: "sha256", payload: "{\"data\":\"x\"}", options: JobOptions(kind: .cpu)) },
                                concurrency: 256, processes: procs, name: "w6-prefetch", workerArgs: ["--cpu-prefetch", String(p)])
        report.figures.append(Figure(workload: "W6", name: "\(n) × sha256 {\"data\":\"x\"} over \(procs) pool processes, --cpu-prefetch \(p)", value: r.rate, unit: "jobs/s",
                                     target: .atLeast(20_000), limit: .rpop))
        report.commandBreakdown.append(("W6 pool jobs, --cpu-prefetch \(p)", r.perJob))
        report.cpuBreakdown.append(("W6 pool jobs, --cpu-prefetch \(p)", r.cpuPerJob))
        detail("w6_prefetch", .obj([("jobs", .int(n)), ("processes", .int(procs)), ("cpu_prefetch", .int(p)), ("first_start_to_last_finish_ms", .int(Int(r.times.spanMs))),
                                    ("jobs_per_s", .num(r.rate)), ("client_wall_s", .num(seconds(r.clientWall))), ("worker_peak_rss_mb", .opt(r.peakRSSMB)),
                                    ("commands_per_job", .num(r.perJob.first?.1 ?? 0))]))
        try await env.flushAll()
    }

    /// W6 where every 10th job aborts its pool child (`cpu.crash`, no retries): each crash costs a
    /// respawn, but no backoff, so the rate stays a fixed fraction of W6's. Reported as the ratio.
    mutating func w6Crashing(plainRate: Double) async throws {
        let n = config.w6CrashJobs
        let procs = config.w6Processes
        let requests = (0..<n).map { i in
            i % 10 == 9
                ? EnqueueRequest(type: "cpu.crash", options: JobOptions(retries: 0, kind: .cpu))
                : EnqueueRequest(type: "sha256", payload: "{\"data\":\"x\"}", options: JobOptions(kind: .cpu))
        }
        let r = try await drain(prefix: "bench-w6c", requests: requests, concurrency: 256, processes: procs, name: "w6-crash", failing: n / 10)
        let ratio = r.rate / plainRate
        let perCrashMs = max(0, Double(r.times.spanMs) - Double(n) / plainRate * 1000) / Double(n / 10) * Double(procs)
        report.figures.append(Figure(workload: "W6", name: "\(n) jobs, 10 % cpu.crash, over \(procs) pool processes: jobs/s as a ratio of W6", value: ratio, unit: "×",
                                     note: String(format: "%.0f jobs/s; about %.1f ms of a pool process per crash (respawn)", r.rate, perCrashMs)))
        detail("w6_crash", .obj([("jobs", .int(n)), ("crashing", .int(n / 10)), ("processes", .int(procs)), ("first_start_to_last_finish_ms", .int(Int(r.times.spanMs))),
                                 ("jobs_per_s", .num(r.rate)), ("ratio_to_w6", .num(ratio)), ("pool_ms_per_crash", .num(perCrashMs))]))
        try await env.flushAll()
    }
}
