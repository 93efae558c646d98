import Foundation

/// Kiln's one wall clock: the milliseconds since the Unix epoch that lease deadlines, retry
/// times, record timestamps and cancel/retry requests carry (docs/architecture.md, "Clocks").
/// Durations measured inside one process use `ContinuousClock` instead.
package enum KilnClock {
    /// Now, in milliseconds since 1970-01-01 UTC.
    package static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
