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
public final class LeaseKeeper: Service, Sendable {
    let options: WorkerOptions
    let keys: KeySchema
    let running: RunningJobs
    let logger: Logger
    private let scripts: ScriptRunner
    private let wake = Mutex<(stop: Bool, now: Bool)>((false, false))
    private let signal = DispatchSemaphore(value: 0)

    init(options: WorkerOptions, keys: KeySchema, running: RunningJobs, logger: Logger) {
        self.options = options
        self.keys = keys
        self.running = running
        self.logger = logger
        self.scripts = ScriptRunner(connection: RedisConnection(configuration: options.redis))
    }

    public func run() async throws {
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
            scripts.connection.close()
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
        let lease = KilnDuration.milliseconds(options.lease)
        let deadline = String(JobRunner.nowMs() + lease)
        for (queue, jobs) in running.byQueue() {
            var args = [keys.queuePrefix(queue), deadline, String(lease)]
            for j in jobs { args.append(j.id); args.append(j.token) }
            let reply = try scripts.runBlocking(KilnScripts.extend, keys: [keys.running(queue)], args: args)
            let f = reply.array.map { $0.string ?? "" }
            var i = 0
            while i + 1 < f.count {
                running.stop(queue: queue, id: f[i], f[i + 1] == "cancel" ? .cancel : .leaseLost)
                i += 2
            }
        }
    }
}

/// Listens on the cancel channel and stops cancelled jobs that run here, within milliseconds.
public struct CancelListener: Service {
    let options: WorkerOptions
    let keys: KeySchema
    let running: RunningJobs
    let leases: LeaseKeeper
    let logger: Logger

    public func run() async throws {
        let conn = RedisBlockingConnection(configuration: options.redis)
        defer { conn.close() }
        let running = self.running
        let leases = self.leases
        try? await cancelWhenGracefulShutdown {
            try await conn.subscribe([keys.cancelChannel], onReconnect: {
                // Cancels published while we were away are in the records: renewal reads them.
                leases.renewSoon()
            }) { message in
                // The message is "prefix:{queue}: id" (see the cancel script).
                guard let text = message.array.last?.string,
                      let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close,
                      let id = text.split(separator: " ").last
                else { return }
                let queue = String(text[text.index(after: open)..<close])
                running.stop(queue: queue, id: String(id), .cancel)
            }
        }
    }
}
