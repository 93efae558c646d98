import Synchronization

/// Counts free execution slots (I/O concurrency or idle pool processes). A fetcher takes slots
/// before it leases jobs, so a worker never holds a lease on a job it has no room to run.
final class SlotPool: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: Int, min: Int, max: Int, continuation: CheckedContinuation<Int, Error>)] = []
        var nextID = 0
    }
    private let state: Mutex<State>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        self.state = Mutex(State(free: capacity))
    }

    var free: Int { state.withLock { $0.free } }

    /// Waits until at least `min` slots are free (clamped to 1...capacity) and takes up to `max`
    /// of them. Throws `CancellationError` if the task is cancelled while waiting. A `min` above
    /// 1 is a low-water mark: fetch a batch only once that many jobs have ended.
    func acquire(max: Int, min: Int = 1) async throws -> Int {
        let min = Swift.max(1, Swift.min(min, capacity))
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, Error>) in
                let taken: Int? = state.withLock { s in
                    if Task.isCancelled { return -1 }
                    if s.free >= min && s.waiters.isEmpty {
                        let n = Swift.min(s.free, max)
                        s.free -= n
                        return n
                    }
                    s.waiters.append((id, min, max, c))
                    return nil
                }
                if let taken {
                    if taken < 0 { c.resume(throwing: CancellationError()) } else { c.resume(returning: taken) }
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Int, Error>? = state.withLock { s in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Gives slots back, waking waiters.
    func release(_ n: Int = 1) {
        guard n > 0 else { return }
        var wake: [(CheckedContinuation<Int, Error>, Int)] = []
        state.withLock { s in
            s.free += n
            while let first = s.waiters.first, s.free >= first.min {
                let w = s.waiters.removeFirst()
                let k = min(s.free, w.max)
                s.free -= k
                wake.append((w.continuation, k))
            }
        }
        for (c, k) in wake { c.resume(returning: k) }
    }
}
