import Foundation
import KilnRedis

extension KilnClient {
    /// Waits until the job is final and returns its record. Does not poll: between reads it
    /// blocks on the job's done list (`BLMOVE done done RIGHT RIGHT`, which leaves the element in
    /// place so every waiter wakes), and wakes within milliseconds of the job finishing.
    /// Network trouble and "not now" replies (a restarting Redis) are retried as the client's
    /// retry policy says. Throws `KilnError(.waitTimedOut)` after `timeout`, `.noSuchJob` if there
    /// is no such job.
    public func wait(_ id: String, queue: String? = nil, timeout: Duration) async throws -> JobRecord {
        try await wait(id, queue: queue, timeout: timeout, knownToExist: false)
    }

    /// `knownToExist`: the caller just enqueued the job into `queue` (a handle from `enqueue`), so
    /// the first read can go with the first wait instead of before it: one round trip less.
    func wait(_ id: String, queue: String?, timeout: Duration, knownToExist: Bool) async throws -> JobRecord {
        let deadline = ContinuousClock.now + timeout
        let q: String
        if knownToExist, let queue {
            q = queue
        } else {
            // Redis may be away when the wait starts, too: the first read also retries until the deadline.
            let located: (queue: String, record: JobRecord)
            do {
                located = try await locate(id, queue: queue, until: deadline)
            } catch let e as KilnError where e.code == .redis && ContinuousClock.now >= deadline {
                throw KilnError(.redis, "job \(id) has not been seen finished after \(KilnDuration.format(timeout)): Redis was unreachable all that time (\(e.message))")
            }
            if located.record.isFinal { return located.record }
            q = located.queue
        }
        do {
            return try await waiters.withConnection { conn in
                // Like a worker, a waiter rides out Redis going away (a restart, a dropped
                // connection): it reconnects and keeps waiting until its own deadline, whatever
                // the retry policy says about single commands.
                var failingSince: ContinuousClock.Instant?
                var pause = Duration.milliseconds(50)
                while true {
                    do {
                        if let rec = try await waitStep(conn, id: id, queue: q, deadline: deadline, timeout: timeout) {
                            return rec
                        }
                        failingSince = nil
                        pause = .milliseconds(50)
                    } catch let e as RedisError where e.isTransient {
                        let now = ContinuousClock.now
                        if failingSince == nil { failingSince = now }
                        if now >= deadline {
                            throw KilnError(.redis, "job \(id) has not been seen finished after \(KilnDuration.format(timeout)): Redis has been unreachable for the last \(KilnDuration.format(now - failingSince!)) (\(e.message))")
                        }
                        // A capped pause before reconnecting, never past the deadline.
                        try await Task.sleep(for: min(pause, deadline - now))
                        pause = min(pause * 2, .seconds(1))
                    }
                }
            }
        } catch let e as KilnError {
            throw e
        } catch {
            throw KilnError.wrap(error)
        }
    }

    /// One round of waiting: the final record, or `nil` to go round again.
    private func waitStep(_ conn: RedisBlockingConnection, id: String, queue q: String,
                          deadline: ContinuousClock.Instant, timeout: Duration) async throws -> JobRecord? {
        let remaining = deadline - ContinuousClock.now
        if remaining <= .zero {
            let rec = try await store.record(queue: q, id: id)
            if let rec, rec.isFinal { return rec }
            throw KilnError(.waitTimedOut, "job \(id) has not finished after \(KilnDuration.format(timeout)) (status: \(rec?.statusText ?? "expired"))")
        }
        guard let rec = try await store.waitForFinal(queue: q, id: id, on: conn, timeout: remaining) else {
            throw KilnError(.noSuchJob, "job \(id) disappeared while waiting (its record expired)")
        }
        return rec.isFinal ? rec : nil
    }
}
