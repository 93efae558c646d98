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
        /// The child died or was killed; `fault` if it died on its own (counts for the backoff).
        case ended(fault: Bool)
    }

    /// What the slot thread should do next, decided under the lock.
    enum Step {
        case wait
        case send(PoolJob, CheckedContinuation<PoolOutcome, Never>)
        case kill
        case stop
    }

    /// Keeps slot `i` supplied with a child until shutdown.
    func runSlot(_ i: Int) {
        let clock = ContinuousClock()
        var failures = 0
        while !state.withLock({ $0.shuttingDown }) {
            if failures > 0 {
                // 50 ms, 100 ms, 200 ms, ... up to 5 s between respawns of a child that keeps dying.
                let delay = min(Duration.milliseconds(50) * (1 << min(failures - 1, 7)), .seconds(5))
                pause(i, delay)
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
            guard case .ended(let fault) = end else { break }
            failures = fault && clock.now - started < .seconds(1) ? failures + 1 : 0
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
                return .ended(fault: false)
            case .send(let job, let c):
                running = c
                do {
                    try PoolFrameIO.writeAll(child.requestFD, PoolFrame.encode(job))
                } catch {
                    let status = stopChild(child, patience: .milliseconds(500))
                    logger.warning("worker process died before taking a job", metadata: meta.merging(["status": "\(status)"]) { $1 })
                    fail(.crashed(status.crashReason))
                    return .ended(fault: true)
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
                    logger.warning("worker process died while running a job; restarting it",
                                   metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                    fail(.crashed(status.crashReason))
                } else {
                    logger.warning("idle worker process died; restarting it",
                                   metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                }
                return .ended(fault: true)
            }
            buffer.withUnsafeBytes { frames.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do {
                guard running != nil else { throw PoolFrameError.malformed("output while idle") }
                guard let payload = try frames.nextPayload() else { continue }
                finish(try PoolFrame.decodeOutcome(payload))
                if frames.hasPartialFrame { throw PoolFrameError.malformed("output after the response") }
            } catch {
                let status = stopChild(child, patience: .zero)
                logger.warning("worker process broke the pool protocol; restarting it",
                               metadata: meta.merging(["error": "\(error)", "status": "\(status)"]) { $1 })
                fail(.crashed("worker process sent a malformed response"))
                return .ended(fault: true)
            }
        }
    }
}
