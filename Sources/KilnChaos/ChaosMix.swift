import Kiln

/// The job kinds a chaos run enqueues and how often (`CHAOS_MIX`).
///
/// - `standard`: async sleeps 45 %, CPU spins 20 %, always-failing jobs 10 %, child crashes 5 %,
///   150 ms timeouts 20 %.
/// - `poison`: child crashes 30 % (`chaos.crash`: each attempt aborts its pool child), async
///   sleeps 30 %, CPU spins 15 %, always-failing jobs 5 %, 150 ms timeouts 20 %.
enum ChaosMix: String, CaseIterable, Sendable {
    case standard, poison

    /// What the producer enqueues for one job.
    struct Pick {
        var type: String
        var payload: String
        var expect: Accepted.Expect
        var options: JobOptions
    }

    /// Upper bounds (exclusive, out of 100) of sleep, spin, fail and crash; the rest are timeouts.
    private var bounds: (sleep: Int, spin: Int, fail: Int, crash: Int) {
        switch self {
        case .standard: return (45, 65, 75, 80)
        case .poison: return (30, 45, 50, 80)
        }
    }

    /// One job, drawn with `rng`; records are kept for `ttl` once final.
    func pick(_ rng: inout SplitMix64, queue: String, ttl: Duration) -> Pick {
        let roll = Int.random(in: 0..<100, using: &rng)
        let b = bounds
        var options = JobOptions(queue: queue, timeout: .seconds(30), retries: 3, resultTTL: ttl)
        switch roll {
        case 0..<b.sleep:
            return Pick(type: "chaos.sleep", payload: "{\"ms\":\(Int.random(in: 20...600, using: &rng))}", expect: .success, options: options)
        case b.sleep..<b.spin:
            options.kind = .cpu
            return Pick(type: "chaos.spin", payload: "{\"n\":\(Int.random(in: 2_000_000...40_000_000, using: &rng))}", expect: .success, options: options)
        case b.spin..<b.fail:
            options.retries = 2
            return Pick(type: "chaos.fail", payload: "{\"ms\":5}", expect: .dead, options: options)
        case b.fail..<b.crash:
            options.retries = 1
            options.kind = .cpu
            return Pick(type: "chaos.crash", payload: "null", expect: .dead, options: options)
        default:
            options.timeout = .milliseconds(150)
            options.retries = 0
            return Pick(type: "chaos.sleep", payload: "{\"ms\":5000}", expect: .timedOut, options: options)
        }
    }
}

/// A bad `CHAOS_*` setting: names the variable and what it accepts.
struct ChaosConfigError: Error, CustomStringConvertible {
    let code = "bad_chaos_setting"
    let description: String
}
