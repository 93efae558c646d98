import Foundation
import Kiln
import KilnRedis

/// Watches every accepted job while the run lasts and keeps each one's final record the first
/// time it is seen final. It does not wait on jobs one by one in enqueue order (a record that
/// finished early would expire, result TTL, before its turn came and look "lost"): every
/// `interval` it asks Redis for the status of all jobs not yet seen final (one pipeline), then
/// reads the full records of those that are. A job is lost only if it was never seen final.
final class ChaosObserver: @unchecked Sendable {
    struct Seen: Sendable {
        let record: JobRecord
        /// When the observer first saw it final (ms since the epoch, this host's clock).
        let observedMs: Int64
    }

    let client: KilnClient
    let queue: String
    let interval: Duration
    private let lock = NSLock()
    private var seen: [String: Seen] = [:]
    /// Polls that failed (Redis restarting or unreachable); they are retried on the next tick.
    private(set) var failedPolls = 0

    init(client: KilnClient, queue: String, interval: Duration = .milliseconds(200)) {
        self.client = client
        self.queue = queue
        self.interval = interval
    }

    var finals: [String: Seen] {
        lock.lock()
        defer { lock.unlock() }
        return seen
    }

    /// Observes until `accepted()` is complete (`producing()` false) and all of it was seen
    /// final, or until `deadline`.
    func observe(accepted: () -> [Accepted], producing: () -> Bool, deadline: ContinuousClock.Instant) async {
        while true {
            let stillProducing = producing()
            let all = accepted()
            let open = lock.withLock { all.filter { seen[$0.id] == nil } }
            if open.isEmpty && !stillProducing { return }
            if ContinuousClock.now >= deadline { return }
            if !open.isEmpty {
                do {
                    try await poll(open.map(\.id))
                } catch {
                    lock.withLock { failedPolls += 1 }
                }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One look at `ids`: statuses first, then the whole records of the final ones.
    func poll(_ ids: [String]) async throws {
        for chunk in stride(from: 0, to: ids.count, by: 1000).map({ Array(ids[$0..<min(ids.count, $0 + 1000)]) }) {
            let statuses = try await client.store.statuses(queue: queue, ids: chunk)
            let finalIDs = zip(chunk, statuses).compactMap { id, s -> String? in
                guard let text = s, let status = JobStatus(rawValue: text), status.isFinal else { return nil }
                return id
            }
            if finalIDs.isEmpty { continue }
            let records = try await client.store.records(queue: queue, ids: finalIDs)
            let now = KilnClock.nowMs()
            lock.withLock {
                for (id, rec) in zip(finalIDs, records) where seen[id] == nil {
                    guard let r = rec, r.isFinal else { continue }
                    seen[id] = Seen(record: r, observedMs: now)
                }
            }
        }
    }
}
