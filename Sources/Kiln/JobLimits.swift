/// The ranges Kiln accepts for a job's numbers, on enqueue (client and scripts) and when a worker
/// reads a record someone else wrote (`docs/protocol.md`, "Validated ranges").
package enum JobLimits {
    /// Longest `timeout_ms` and `result_ttl_ms`: 10 years, also the longest duration flag.
    package static let maxDurationMs: Int64 = 315_360_000_000
    /// Most retries (`max_attempts` = retries + 1).
    package static let maxRetries = 1000
    /// Longest job type, in bytes.
    package static let maxTypeBytes = 200
}
