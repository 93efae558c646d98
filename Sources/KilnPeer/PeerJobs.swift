import Kiln

/// The harness's job types (ADAPTER.md, "Job types"), as a Kiln registry: `noop`, `sleep` and
/// `echo` run on the worker's async loop, `cpu` in the worker's process pool. The first three
/// write a probe record when they end.
enum PeerJobs {
    struct SleepPayload: Codable { var s: Double }
    struct CPUPayload: Codable { var n: Int }

    /// The largest `cpu` argument: `i * i` must fit in a 64-bit Int for every i below it.
    static let maxIterations = 3_000_000_000

    static func registry() -> JobRegistry {
        var r = JobRegistry()
        r.ioRaw("noop") { _, _ in
            let t = Probe.now()
            Probe.mark(t, t)
            return "null"
        }
        r.io("sleep", payload: SleepPayload.self) { p, _ -> Double in
            let t = Probe.now()
            guard p.s >= 0, p.s <= 3600 else { throw JobFailure("'s' must be from 0 to 3600 seconds", type: "bad_payload", retryable: false) }
            try await Task.sleep(for: .nanoseconds(Int64(p.s * 1e9)))  // suspends; the loop serves other jobs
            Probe.mark(t, Probe.now())
            return p.s
        }
        r.cpu("cpu", payload: CPUPayload.self) { p, _ -> Int in
            let t = Probe.now()
            guard (0...maxIterations).contains(p.n) else {
                throw JobFailure("'n' must be from 0 to \(maxIterations)", type: "bad_payload", retryable: false)
            }
            let s = cpuLoop(p.n)
            Probe.mark(t, Probe.now())
            return s
        }
        r.ioRaw("echo") { payload, _ in payload }
        return r
    }

    /// ADAPTER.md's CPU loop, `s = 0; for i in 0..<n: s += i*i % 7`, with the same integer
    /// semantics as Python and Ruby for every n up to `maxIterations` (no overflow: Swift's Int
    /// traps on overflow rather than wrapping, and `*` and `%` bind left to right as there).
    @inline(never)
    static func cpuLoop(_ n: Int) -> Int {
        var s = 0
        var i = 0
        while i < n {
            s += i * i % 7
            i += 1
        }
        return s
    }

    /// Kinds of the job types, for the producer's client (so `cpu` jobs are enqueued as CPU jobs).
    static let kinds: [String: JobKind] = registry().handlers.mapValues(\.kind)
}
