import Synchronization

/// Why a running job is being stopped from outside its handler.
enum StopReason: Sendable, Equatable {
    /// Someone cancelled it (`kiln cancel`).
    case cancel
    /// Its lease was lost: another worker owns the job now; write nothing.
    case leaseLost
    /// The worker is shutting down and the grace period is over: hand it back to the queue.
    case shutdown
}

/// The jobs running in this worker, for the lease keeper, the cancel listener and shutdown.
/// Keyed by queue and id: caller-chosen ids are unique only within a queue.
final class RunningJobs: Sendable {
    struct Key: Hashable, Sendable {
        let queue: String
        let id: String
    }
    struct Entry: Sendable {
        let token: String
        let control: JobControl
    }
    private let jobs = Mutex<[Key: Entry]>([:])

    func add(queue: String, id: String, _ entry: Entry) { jobs.withLock { $0[Key(queue: queue, id: id)] = entry } }
    func remove(queue: String, id: String) { jobs.withLock { _ = $0.removeValue(forKey: Key(queue: queue, id: id)) } }
    var count: Int { jobs.withLock { $0.count } }

    /// Running jobs grouped by queue: id and token, for lease renewal.
    func byQueue() -> [String: [(id: String, token: String)]] {
        jobs.withLock { all in
            var out: [String: [(id: String, token: String)]] = [:]
            for (k, e) in all { out[k.queue, default: []].append((k.id, e.token)) }
            return out
        }
    }

    /// Stops one job if it runs here; returns whether it did.
    @discardableResult
    func stop(queue: String, id: String, _ reason: StopReason) -> Bool {
        guard let e = jobs.withLock({ $0[Key(queue: queue, id: id)] }) else { return false }
        e.control.stop(.stopped(reason))
        return true
    }

    func stopAll(_ reason: StopReason) {
        for e in jobs.withLock({ Array($0.values) }) { e.control.stop(.stopped(reason)) }
    }
}
