import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle

/// Puts jobs whose lease expired back on their queue, moves due retries to their queue, trims the
/// dead-letter set, and now and then sweeps for jobs marked running that have no lease.
///
/// After Redis has been unreachable it does not reclaim for one lease: every lease deadline may
/// have passed during the outage while the jobs' workers were alive, and their heartbeats need a
/// chance to land first. (Due retries are still moved meanwhile.)
package struct Reaper: Service {
    let options: WorkerOptions
    let store: KilnStore
    let logger: Logger

    package func run() async throws {
        var outage = OutageTracker(what: "reap expired leases", logger: logger)
        var noReclaimUntil = ContinuousClock.now
        var nextSweep = ContinuousClock.now + options.sweepInterval
        while true {
            var sleep = options.reapInterval
            do {
                let now = KilnClock.nowMs()
                let reclaim = ContinuousClock.now >= noReclaimUntil
                for queue in options.queues {
                    let r = try await store.reap(queue: queue, now: now, limit: 500, reclaim: reclaim,
                                                 deadMax: options.deadMax, deadMaxAge: options.deadMaxAge)
                    if r.reclaimed > 0 { logger.warning("reclaimed \(r.reclaimed) job(s) whose worker stopped renewing its lease", metadata: ["queue": "\(queue)"]) }
                    if let next = r.nextDueMs {
                        sleep = min(sleep, .milliseconds(max(5, next - now)))
                    }
                }
                if ContinuousClock.now >= nextSweep {
                    try await sweep()
                    nextSweep = ContinuousClock.now + options.sweepInterval
                }
                if outage.inOutage { noReclaimUntil = ContinuousClock.now + options.lease }
                outage.succeeded()
            } catch {
                if await !outage.failed(error) { return }
                continue
            }
            let pause = sleep
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            } catch { return }
        }
    }

    /// Finds jobs marked running with no entry in the lease set and gives them a lease.
    func sweep() async throws {
        let deadline = KilnClock.nowMs() + KilnDuration.milliseconds(options.lease)
        for queue in options.queues {
            let found = try await store.sweepAll(queue: queue, deadline: deadline)
            if found > 0 { logger.warning("found \(found) job(s) marked running without a lease; they will be reclaimed unless a worker renews them", metadata: ["queue": "\(queue)"]) }
        }
    }
}
