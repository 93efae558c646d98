import Synchronization

/// One job's timeout, armed when the job starts rather than when it is fetched: for a CPU job
/// that is when a pool process takes it (a prefetched job may wait in the worker first), so the
/// pool calls ``start()`` from its slot thread. ``disarm()`` removes it once the job ended.
final class DeadlineArm: Sendable {
    private let deadlines: Deadlines
    private let control: JobControl
    private let timeout: Duration
    private let key = Mutex<Int64?>(nil)

    init(deadlines: Deadlines, control: JobControl, timeout: Duration) {
        self.deadlines = deadlines
        self.control = control
        self.timeout = timeout
    }

    /// Starts the timeout now (again, if it was started before: only the latest counts).
    func start() {
        let k = deadlines.add(control, at: ContinuousClock.now + timeout)
        let old = key.withLock { key -> Int64? in
            defer { key = k }
            return key
        }
        if let old, old != k { deadlines.remove(control, key: old) }
    }

    func disarm() {
        if let k = key.withLock({ $0 }) { deadlines.remove(control, key: k) }
    }
}
