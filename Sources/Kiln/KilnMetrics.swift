import Metrics
import Synchronization

/// Kiln's metric names (docs/observability.md). Counters and timers carry the dimensions
/// `queue` and `type`; the busy-slots meter carries `kind` (`io` or `cpu`).
public enum KilnMetricNames {
    /// Counter: jobs enqueued by a client.
    public static let enqueued = "kiln_jobs_enqueued_total"
    /// Counter: attempts started by a worker.
    public static let started = "kiln_jobs_started_total"
    /// Counter: attempts that succeeded.
    public static let succeeded = "kiln_jobs_succeeded_total"
    /// Counter: attempts that failed (the handler threw, crashed, or the job was malformed).
    public static let failed = "kiln_jobs_failed_total"
    /// Counter: attempts that ended and left the job to retry.
    public static let retried = "kiln_jobs_retried_total"
    /// Counter: attempts stopped at their timeout.
    public static let timedOut = "kiln_jobs_timed_out_total"
    /// Counter: running attempts stopped by a cancel.
    public static let cancelled = "kiln_jobs_cancelled_total"
    /// Counter: jobs moved to the dead list (no attempts left).
    public static let dead = "kiln_jobs_dead_total"
    /// Timer: from when a job became ready to when a worker leased it.
    public static let queueWait = "kiln_job_queue_wait_seconds"
    /// Timer: how long an attempt ran.
    public static let runTime = "kiln_job_run_seconds"
    /// Meter: slots running a job now, per kind.
    public static let busySlots = "kiln_worker_busy_slots"
}

/// Metric objects made once per (queue, type) and kept: the hot path looks them up under a lock
/// instead of asking the factory (which may register them) for every job.
package final class MetricsCache<Value: Sendable>: Sendable {
    private struct Key: Hashable {
        let queue: String
        let type: String
    }
    private let values = Mutex<[Key: Value]>([:])
    private let make: @Sendable (_ dimensions: [(String, String)]) -> Value

    package init(make: @escaping @Sendable (_ dimensions: [(String, String)]) -> Value) {
        self.make = make
    }

    /// The metrics of `queue` and `type`, made on first use.
    package func get(queue: String, type: String) -> Value {
        let key = Key(queue: queue, type: type)
        if let v = values.withLock({ $0[key] }) { return v }
        // Made outside the lock (a factory may take locks of its own); the first one stored wins.
        let made = make([("queue", queue), ("type", type)])
        return values.withLock { d in
            if let v = d[key] { return v }
            d[key] = made
            return made
        }
    }
}

/// The metrics factory to use, or nil when `factory` (else the global one) is the no-op
/// factory: then nothing is made or recorded at all.
package func kilnMetricsFactory(_ factory: (any MetricsFactory)?) -> (any MetricsFactory)? {
    let f = factory ?? MetricsSystem.factory
    return f is NOOPMetricsHandler ? nil : f
}
