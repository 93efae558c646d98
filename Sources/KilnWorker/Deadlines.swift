import HeapModule
import Synchronization

/// One timer for every running job's timeout, instead of a sleeping task per job. Deadlines are
/// kept in 4 ms buckets (rounded up, so a job is never stopped early); one loop sleeps until the
/// earliest non-empty bucket and stops the jobs in it with `.timedOut`. A job that ends first
/// removes itself, so finished jobs cost nothing here.
final class Deadlines: Sendable {
    static let bucketMs: Int64 = 4

    private struct State {
        var buckets: [Int64: [ObjectIdentifier: JobControl]] = [:]
        var heap = Heap<Int64>()
        /// The bucket the loop sleeps until (nil: no deadline, sleeping until woken).
        var target: Int64?
        var wake: CheckedContinuation<Void, Never>?
        var wakeRequested = false
    }

    private let state = Mutex(State())
    private let origin = ContinuousClock.now

    private func ms(_ t: ContinuousClock.Instant) -> Int64 {
        let d = (t - origin).components
        return d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000
    }

    /// Stops `control` with `.timedOut` at `deadline` unless it is removed first. Returns the
    /// bucket key to pass to `remove`.
    func add(_ control: JobControl, at deadline: ContinuousClock.Instant) -> Int64 {
        let key = (ms(deadline) + Self.bucketMs) / Self.bucketMs * Self.bucketMs
        let wake: CheckedContinuation<Void, Never>? = state.withLock { s in
            if s.buckets[key] == nil {
                s.buckets[key] = [:]
                s.heap.insert(key)
            }
            s.buckets[key]![ObjectIdentifier(control)] = control
            guard s.target.map({ key < $0 }) ?? true else { return nil }
            // Earlier than what the loop sleeps for: wake it to sleep less.
            if let w = s.wake {
                s.wake = nil
                return w
            }
            s.wakeRequested = true
            return nil
        }
        wake?.resume()
        return key
    }

    func remove(_ control: JobControl, key: Int64) {
        state.withLock { s in
            s.buckets[key]?.removeValue(forKey: ObjectIdentifier(control))
            if s.buckets[key]?.isEmpty == true { s.buckets[key] = nil }
        }
    }

    /// Runs the timer until the task is cancelled.
    func run() async {
        while !Task.isCancelled {
            let now = ms(.now)
            var due: [JobControl] = []
            let next: Int64? = state.withLock { s in
                while let k = s.heap.min {
                    guard let bucket = s.buckets[k] else {
                        _ = s.heap.popMin()   // emptied: every job in it ended
                        continue
                    }
                    if k > now { break }
                    _ = s.heap.popMin()
                    s.buckets[k] = nil
                    due.append(contentsOf: bucket.values)
                }
                s.target = s.heap.min
                s.wakeRequested = false
                return s.target
            }
            for c in due { c.stop(.timedOut) }
            await sleep(untilMs: next)
        }
    }

    /// Sleeps until `target` (ms since `origin`), or until `add` wakes it, or cancellation.
    private func sleep(untilMs target: Int64?) async {
        await withTaskGroup(of: Void.self) { group in
            if let target {
                let at = origin + .milliseconds(target)
                group.addTask { try? await Task.sleep(until: at, clock: .continuous) }
            }
            group.addTask { await self.waitForWake() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForWake() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { s in
                    if s.wakeRequested || Task.isCancelled {
                        s.wakeRequested = false
                        return true
                    }
                    s.wake = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, Never>? = state.withLock { s in
                defer { s.wake = nil }
                return s.wake
            }
            c?.resume()
        }
    }
}
