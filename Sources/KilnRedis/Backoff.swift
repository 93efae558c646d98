/// Exponential backoff with jitter: the one retry pause of Kiln's loops (reconnects, result
/// writes, fetch and heartbeat errors, pool respawns, client retries) and the job retry delay.
/// Each delay is the current step × (1 + random[0, `jitter`)), capped at `max`; the step starts at
/// `initial` and doubles after each `next()` until it reaches `max`.
///
/// ```swift
/// var backoff = Backoff(initial: .milliseconds(50), max: .seconds(1))
/// while true {
///     do { return try await write() } catch { try await Task.sleep(for: backoff.next()) }
/// }
/// ```
package struct Backoff: Sendable {
    package let initial: Duration
    package let max: Duration
    /// The random extra, as a fraction of the step (0.2: up to 20 % longer; 0: none).
    package let jitter: Double
    private var step: Duration

    /// A `max` under `initial` is raised to `initial`; a zero `initial` gives no pause at all.
    package init(initial: Duration, max: Duration, jitter: Double = 0.2) {
        self.initial = Swift.max(initial, .zero)
        self.max = Swift.max(max, self.initial)
        self.jitter = Swift.max(jitter, 0)
        step = self.initial
    }

    /// The pause to take now; the next one is twice as long (up to `max`).
    package mutating func next() -> Duration {
        let d = Self.jittered(step, jitter: jitter, max: max)
        step = Swift.min(step * 2, max)
        return d
    }

    /// Starts again from `initial` (after a success).
    package mutating func reset() { step = initial }

    /// The delay before retry number `attempt` (1: the first) without keeping state:
    /// `initial × 2^(attempt-1) × (1 + random[0, jitter))`, capped at `max`.
    package static func delay(attempt: Int, initial: Duration, max: Duration, jitter: Double) -> Duration {
        let doublings = Swift.min(Swift.max(attempt - 1, 0), 30)
        let seconds = Double(initial.components.seconds) + Double(initial.components.attoseconds) / 1e18
        let exp = seconds * Double(1 << doublings)
        let capSeconds = Double(max.components.seconds) + Double(max.components.attoseconds) / 1e18
        return jittered(.seconds(Swift.min(exp, capSeconds)), jitter: jitter, max: max)
    }

    private static func jittered(_ d: Duration, jitter: Double, max: Duration) -> Duration {
        guard jitter > 0 else { return Swift.min(d, max) }
        return Swift.min(d * (1 + Double.random(in: 0..<jitter)), max)
    }
}
