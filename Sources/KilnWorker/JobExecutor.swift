import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle

/// Fetches jobs and runs them: one fetch loop per queue and kind, each taking free slots first and
/// then leasing at most that many jobs in one script call. I/O jobs run as child tasks on the
/// async loop (up to `concurrency`, plus `prefetch` waiting for a slot); CPU jobs go to the
/// process pool (up to `processes`, plus `cpuPrefetch` waiting ones, fetched again once they fell
/// to the low-water mark).
///
/// On graceful shutdown it stops fetching, lets running jobs finish for `shutdownGrace`, then
/// stops the rest, which hand their jobs back to the queue.
package struct JobExecutor: Service {
    let options: WorkerOptions
    let runner: JobRunner
    let store: KilnStore
    let running: RunningJobs
    let ioSlots: SlotPool
    let cpuSlots: SlotPool?
    let logger: Logger

    package func run() async throws {
        let grace = options.shutdownGrace
        let running = self.running
        let logger = self.logger
        await withTaskGroup(of: Bool.self) { outer in
            outer.addTask {
                await withDiscardingTaskGroup { loops in
                    for queue in options.queues {
                        loops.addTask { await fetchLoop(queue: queue, kind: .io, slots: ioSlots) }
                        if let cpuSlots {
                            loops.addTask { await fetchLoop(queue: queue, kind: .cpu, slots: cpuSlots) }
                        }
                    }
                }
                return true
            }
            // The timer for every job's timeout; cancelled once the fetch loops (and so every job) ended.
            let deadlines = runner.deadlines
            outer.addTask {
                await deadlines.run()
                return false
            }
            outer.addTask {
                do { try await gracefulShutdown() } catch { return false }
                if options.cpuPrefetch > 0, let pool = runner.pool {
                    // Prefetched CPU jobs not started yet go back to the queue now, unrun.
                    pool.handBackUnstarted()
                }
                let n = running.count
                if n > 0 { logger.info("shutting down: waiting up to \(KilnDuration.format(grace)) for \(n) running job(s)") }
                do { try await Task.sleep(for: grace) } catch { return false }
                if running.count > 0 {
                    logger.warning("shutdown grace over: stopping \(running.count) job(s) and handing them back to the queue")
                }
                running.stopAll(.shutdown)
                return false
            }
            while let finished = await outer.next() {
                if finished {
                    outer.cancelAll()
                    break
                }
            }
        }
    }

    private func fetchLoop(queue: String, kind: JobKind, slots: SlotPool) async {
        var log = logger
        log[metadataKey: "queue"] = "\(queue)"
        log[metadataKey: "kind"] = "\(kind.rawValue)"
        let waiter = RedisBlockingConnection(configuration: options.redis)
        defer { waiter.close() }
        // A job ends by its timeout (plus the kill grace for CPU jobs); the lease margin leaves
        // room for writing the outcome.
        var outage = OutageTracker(what: "fetch jobs", logger: log)
        await withDiscardingTaskGroup { jobs in
            while true {
                let n: Int
                do {
                    let low = kind == .cpu ? options.cpuFetchThreshold : options.ioFetchThreshold
                    n = try await cancelWhenGracefulShutdown { try await slots.acquire(max: options.fetchBatch, min: low) }
                } catch { break }
                // `cancelWhenGracefulShutdown` can lose the race to an acquire that needs no wait:
                // never fetch once shutdown began (with prefetch the jobs would be handed back at
                // once, freeing their slots for the next fetch: a release loop).
                if Task.isShuttingDownGracefully {
                    slots.release(n)
                    break
                }
                let leased: [LeasedJob]
                do {
                    leased = try await store.fetch(queue: queue, kind: kind, max: n, worker: options.name, lease: options.lease,
                                                   leaseMargin: options.leaseMargin, now: KilnClock.nowMs()).map(LeasedJob.init)
                    outage.succeeded()
                } catch {
                    slots.release(n)
                    if await !outage.failed(error) { break }
                    continue
                }
                if leased.count < n { slots.release(n - leased.count) }
                for job in leased {
                    jobs.addTask {
                        await runner.run(job) { slots.release(1) }
                    }
                }
                if leased.count < n {
                    // Fewer jobs than free slots: the list is (nearly) empty. Block until it has
                    // a job (at once if it still has one) rather than fetch again right away.
                    // The fetch is deliberately not pipelined behind this wait (which would save a
                    // round trip): Redis would run it for a worker that was stopped or cut off while
                    // its wait was pending, leasing jobs nobody runs until their leases expire.
                    do {
                        try await cancelWhenGracefulShutdown {
                            try await store.waitForWork(queue: queue, kind: kind, on: waiter, seconds: 5)
                        }
                    } catch is CancellationError {
                        break
                    } catch {
                        if await !outage.failed(error) { break }
                    }
                }
            }
        }
    }
}

/// Logs a Redis outage once (not once per command), backs off between attempts with a cap, and
/// logs again when Redis is back.
struct OutageTracker {
    let what: String
    let logger: Logger
    private var since: ContinuousClock.Instant?
    private var backoff = Backoff(initial: .milliseconds(100), max: .seconds(2))

    init(what: String, logger: Logger) {
        self.what = what
        self.logger = logger
    }

    var inOutage: Bool { since != nil }

    mutating func succeeded() {
        if let since {
            logger.info("Redis is reachable again; resumed (outage lasted \(KilnDuration.format(ContinuousClock.now - since)))")
            self.since = nil
            backoff.reset()
        }
    }

    /// Records a failure and waits before the next attempt. Returns false if shutdown or
    /// cancellation interrupted the wait.
    mutating func failed(_ error: Error) async -> Bool {
        if since == nil {
            since = .now
            logger.error("cannot \(what): \(error); retrying with backoff")
        }
        let d = backoff.next()
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: d) }
            return true
        } catch {
            return false
        }
    }
}
