import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle
import Synchronization

/// The heartbeat: every third of the shortest lease it renews the lease of every job running here, in one
/// script call per queue. The same call reports jobs that were cancelled (a durable fallback to
/// the cancel channel) and jobs whose lease was lost, which are stopped without writing anything.
///
/// It runs on an OS thread of its own with its own Redis connection, so handlers that hog every
/// Swift concurrency thread (a blocking call in an I/O handler) cannot starve it and lose leases.
package final class LeaseKeeper: Service, Sendable {
    let options: WorkerOptions
    let running: RunningJobs
    let logger: Logger
    /// The worker's store on a connection of the heartbeat's own.
    private let store: KilnStore
    private let wake = Mutex<(stop: Bool, now: Bool)>((false, false))
    private let signal = DispatchSemaphore(value: 0)

    init(options: WorkerOptions, store: KilnStore, running: RunningJobs, logger: Logger) {
        self.options = options
        self.running = running
        self.logger = logger
        self.store = store.on(RedisConnection(configuration: options.redis))
    }

    package func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (exited: CheckedContinuation<Void, Never>) in
                    self.startThread { exited.resume() }
                }
            }
            group.addTask {
                // Returns on graceful shutdown, throws on cancellation: either way, stop the thread.
                try? await gracefulShutdown()
                self.stop()
            }
            await group.waitForAll()
        }
    }

    /// A third of the shortest lease a job can get: the worker's lease, or for short jobs their
    /// timeout plus the lease margin (see `JobExecutor`), which is at least the margin.
    var interval: Duration { min(options.lease, options.leaseMargin) / 3 }

    private func startThread(onExit: @escaping @Sendable () -> Void) {
        let interval = self.interval
        let thread = Thread { [self] in
            var outage: ContinuousClock.Instant?
            while true {
                _ = signal.wait(timeout: .now() + .milliseconds(Int(KilnDuration.milliseconds(interval))))
                let w = wake.withLock { w -> (stop: Bool, now: Bool) in
                    defer { w.now = false }
                    return w
                }
                if w.stop { break }
                do {
                    try renew()
                    if let since = outage {
                        logger.info("lease renewal works again (failed for \(KilnDuration.format(ContinuousClock.now - since)))")
                        outage = nil
                    }
                } catch {
                    if outage == nil {
                        outage = .now
                        logger.error("cannot renew leases: \(error); retrying every \(KilnDuration.format(interval))")
                    }
                }
            }
            store.connection.close()
            onExit()
        }
        thread.name = "kiln-heartbeat"
        thread.start()
    }

    private func stop() {
        wake.withLock { $0.stop = true }
        signal.signal()
    }

    /// Renews now instead of at the next tick (after the cancel channel reconnects).
    func renewSoon() {
        wake.withLock { $0.now = true }
        signal.signal()
    }

    /// One renewal pass, blocking; called on the heartbeat thread.
    func renew() throws {
        let deadline = KilnClock.nowMs() + KilnDuration.milliseconds(options.lease)
        for (queue, jobs) in running.byQueue() {
            let stops = try store.extendBlocking(queue: queue, jobs: jobs.map { ($0.id, $0.token) }, deadline: deadline, lease: options.lease)
            for s in stops { running.stop(queue: queue, id: s.id, s.verdict == .cancel ? .cancel : .leaseLost) }
        }
    }
}

/// Listens on the cancel channel and stops cancelled jobs that run here, within milliseconds.
package struct CancelListener: Service {
    let options: WorkerOptions
    let store: KilnStore
    let running: RunningJobs
    let leases: LeaseKeeper
    let logger: Logger

    package func run() async throws {
        let conn = RedisBlockingConnection(configuration: options.redis)
        defer { conn.close() }
        let running = self.running
        let leases = self.leases
        try? await cancelWhenGracefulShutdown {
            try await store.listenForCancels(on: conn, onReconnect: {
                // Cancels published while we were away are in the records: renewal reads them.
                leases.renewSoon()
            }) { queue, id in
                running.stop(queue: queue, id: id, .cancel)
            }
        }
    }
}
