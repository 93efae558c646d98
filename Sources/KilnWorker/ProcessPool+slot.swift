#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

// The body of a slot's dedicated OS thread. Everything here may block.
extension ProcessPool {
    /// How a child's service ended.
    enum ServeEnd {
        /// The pool is shutting down; the child was stopped.
        case shutdown
        /// The child died or was killed. `unhealthy` if it failed on its own while no job was
        /// running in it (died idle, refused its first job, broke the protocol while idle): only
        /// that counts for the respawn backoff. A child that died under a job (the job aborted,
        /// was signalled, OOM-killed, or killed for its timeout or a cancel) is the job's fault and
        /// is replaced at once, so a stream of crashing jobs cannot throttle the other CPU jobs.
        /// `servedJob` if it completed at least one job first (a healthy run: resets the backoff).
        case ended(unhealthy: Bool, servedJob: Bool)
    }

    /// What the slot thread should do next, decided under the lock.
    enum Step {
        case wait
        case send(PoolJob, CheckedContinuation<PoolOutcome, Never>)
        case kill
        case stop
    }

    /// The wait before respawning a slot's child after `failures` unhealthy ends in a row:
    /// none for 0, then 50 ms, 100 ms, 200 ms, ... up to 5 s.
    static func respawnDelay(failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        return min(Duration.milliseconds(50) * (1 << min(failures - 1, 7)), .seconds(5))
    }

    /// The slot's unhealthy-end count after a child's service ended (see ``ServeEnd``): a child
    /// that died under a job or was killed is no fault of the slot (0, respawn at once); one that
    /// failed on its own adds one, unless it had a healthy run first (a job done, or a second up).
    static func failuresAfter(_ failures: Int, unhealthy: Bool, servedJob: Bool, lived: Duration) -> Int {
        guard unhealthy else { return 0 }
        return servedJob || lived >= .seconds(1) ? 1 : failures + 1
    }

    /// Keeps slot `i` supplied with a child until shutdown.
    func runSlot(_ i: Int) {
        let clock = ContinuousClock()
        var failures = 0
        while !state.withLock({ $0.shuttingDown }) {
            if failures > 0 {
                // Backoff only for children that fail to start or die idle (see `failuresAfter`).
                pause(i, Self.respawnDelay(failures: failures))
                if state.withLock({ $0.shuttingDown }) { break }
            }
            let child: PoolChildProcess
            do {
                child = try spawnChild()
            } catch {
                logger.error("could not start worker process", metadata: ["slot": "\(i)", "error": "\(error)"])
                failures += 1
                continue
            }
            let started = clock.now
            let end = serve(i, child)
            state.withLock { $0.retire(i) }
            guard case .ended(let unhealthy, let servedJob) = end else { break }
            failures = Self.failuresAfter(failures, unhealthy: unhealthy, servedJob: servedJob, lived: clock.now - started)
        }
        // A job submitted to this slot while it had no child will never run now.
        let (orphan, stopped) = state.withLock { s -> (CheckedContinuation<PoolOutcome, Never>?, CheckedContinuation<Void, Never>?) in
            let c = s.slots[i].continuation
            if c != nil { _ = s.release(i) }
            s.threadsRunning -= 1
            guard s.threadsRunning == 0 else { return (c, nil) }
            let stopped = s.stopped
            s.stopped = nil
            return (c, stopped)
        }
        orphan?.resume(returning: .crashed(Self.shutDownReason))
        stopped?.resume()
    }

    /// Sleeps up to `delay`, waking early if slot `i` is woken.
    private func pause(_ i: Int, _ delay: Duration) {
        var p = pollfd(fd: wakePipes[i].read, events: Int16(POLLIN), revents: 0)
        let ms = Int32(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
        _ = poll(&p, 1, ms)
        drainWake(i)
    }

    private func drainWake(_ i: Int) {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(wakePipes[i].read, &buf, buf.count) > 0 {}
    }

    /// Runs jobs on `child` until it dies, is killed, or the pool shuts down.
    func serve(_ i: Int, _ child: PoolChildProcess) -> ServeEnd {
        let meta: Logger.Metadata = ["slot": "\(i)", "pid": "\(child.pid)"]
        let waiter = state.withLock { s -> PoolState.Waiter? in
            s.slots[i].pid = child.pid
            return s.slots[i].phase == .starting ? s.release(i) : nil
        }
        waiter?.continuation.resume(returning: i)
        logger.debug("worker process started", metadata: meta)

        var running: CheckedContinuation<PoolOutcome, Never>?
        var servedJob = false
        var frames = PoolFrameBuffer()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        /// Finishes the job in progress and makes the slot available again (unless shutting down).
        func finish(_ outcome: PoolOutcome) {
            guard let c = running else { return }
            running = nil
            let waiter = state.withLock { s in s.release(i) }
            waiter?.continuation.resume(returning: i)
            c.resume(returning: outcome)
        }
        /// Finishes the job in progress without making the slot available (its child is gone).
        func fail(_ outcome: PoolOutcome) {
            guard let c = running else { return }
            running = nil
            state.withLock { s in
                s.slots[i].phase = .starting
                s.slots[i].killRequested = false
            }
            c.resume(returning: outcome)
        }

        while true {
            let step: Step = state.withLock { s in
                let slot = s.slots[i]
                if running != nil {
                    return slot.killRequested || s.killBusy ? .kill : .wait
                }
                if slot.phase == .busy, let job = slot.job, let c = slot.continuation {
                    s.slots[i].job = nil
                    s.slots[i].continuation = nil
                    return .send(job, c)
                }
                if s.shuttingDown && slot.phase != .busy {
                    s.idle.removeAll { $0 == i }
                    return .stop
                }
                return .wait
            }
            switch step {
            case .wait:
                break
            case .stop:
                let status = stopChild(child, patience: killGrace)
                logger.debug("worker process stopped", metadata: meta.merging(["status": "\(status)"]) { $1 })
                return .shutdown
            case .kill:
                let status = stopChild(child, patience: .zero)
                logger.info("killed worker process of a cancelled job", metadata: meta.merging(["status": "\(status)"]) { $1 })
                fail(.killed)
                return .ended(unhealthy: false, servedJob: servedJob)
            case .send(let job, let c):
                running = c
                do {
                    try PoolFrameIO.writeAll(child.requestFD, PoolFrame.encode(job))
                } catch {
                    let status = stopChild(child, patience: .milliseconds(500))
                    logger.warning("worker process died before taking a job", metadata: meta.merging(["status": "\(status)"]) { $1 })
                    fail(.crashed(status.crashReason))
                    return .ended(unhealthy: true, servedJob: servedJob)
                }
                continue
            }

            var fds = [
                pollfd(fd: wakePipes[i].read, events: Int16(POLLIN), revents: 0),
                pollfd(fd: child.responseFD, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&fds, 2, -1) < 0 { continue }  // EINTR
            if fds[0].revents != 0 { drainWake(i) }
            guard fds[1].revents != 0 else { continue }

            let n = buffer.withUnsafeMutableBytes { read(child.responseFD, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // End of file: the child is gone (or closed its pipe, which is as good as gone).
                let status = stopChild(child, patience: .milliseconds(500))
                if running != nil {
                    // The job's fault (abort, signal, OOM kill): replace the child at once.
                    logger.warning("worker process died while running a job; restarting it",
                                   metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                    fail(.crashed(status.crashReason))
                    return .ended(unhealthy: false, servedJob: servedJob)
                }
                logger.warning("idle worker process died; restarting it",
                               metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                return .ended(unhealthy: true, servedJob: servedJob)
            }
            buffer.withUnsafeBytes { frames.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do {
                guard running != nil else { throw PoolFrameError.malformed("output while idle") }
                guard let payload = try frames.nextPayload() else { continue }
                finish(try PoolFrame.decodeOutcome(payload))
                servedJob = true
                if frames.hasPartialFrame { throw PoolFrameError.malformed("output after the response") }
            } catch {
                // Garbage while a job runs is that job's doing (it wrote to fd 4); while idle, the child's.
                let duringJob = running != nil
                let status = stopChild(child, patience: .zero)
                logger.warning("worker process broke the pool protocol; restarting it",
                               metadata: meta.merging(["error": "\(error)", "status": "\(status)"]) { $1 })
                fail(.crashed("worker process sent a malformed response"))
                return .ended(unhealthy: !duringJob, servedJob: servedJob)
            }
        }
    }
}
