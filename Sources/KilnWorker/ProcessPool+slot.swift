#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnRedis
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
        /// Write a job to the pipe; `onStart` if the child is idle and takes it at once.
        case send(PoolJob, ticket: UInt64, onStart: (@Sendable () -> Void)?)
        /// Withdraw a job waiting in the pipe.
        case drop(PoolJob)
        case kill
        case stop
    }

    /// How long a child gets to confirm that it did not start a cancelled job withdrawn from its
    /// pipe (it answers at once if the drop arrived first) before it is killed as if running it.
    static let dropGrace = Duration.milliseconds(50)

    /// The wait before respawning a slot's child after `failures` unhealthy ends in a row:
    /// none for 0, then 50 ms, 100 ms, 200 ms, ... up to 5 s.
    static func respawnDelay(failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        // No jitter: the slots of one pool need no spreading out, and the steps stay exact.
        return Backoff.delay(attempt: failures, initial: .milliseconds(50), max: .seconds(5), jitter: 0)
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
            // Normally settled by `serve` already; whatever the slot still holds never ran.
            let (left, resolved, _, woken) = state.withLock { $0.childGone(i) }
            left?.continuation.resume(returning: .crashed(Self.shutDownReason))
            for (sub, outcome) in resolved { sub.continuation.resume(returning: outcome) }
            for w in woken { wake(w) }
            guard case .ended(let unhealthy, let servedJob) = end else { break }
            failures = Self.failuresAfter(failures, unhealthy: unhealthy, servedJob: servedJob, lived: clock.now - started)
        }
        let stopped = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.threadsRunning -= 1
            guard s.threadsRunning == 0 else { return nil }
            defer { s.stopped = nil }
            return s.stopped
        }
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
        let woken = state.withLock { s -> [Int] in
            s.slots[i].pid = child.pid
            return s.dispatch()
        }
        for w in woken where w != i { wake(w) }
        logger.debug("worker process started", metadata: meta)

        let clock = ContinuousClock()
        var servedJob = false
        var frames = PoolFrameBuffer()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        /// Set while the running job is a cancelled one withdrawn from the pipe: kill after this.
        var dropGraceUntil: ContinuousClock.Instant?

        /// The child is gone: gives the running job `outcome`, settles the others (uncharged),
        /// and returns whether a job was running.
        func gone(_ outcome: PoolOutcome) -> Bool {
            let (running, resolved, requeued, woken) = state.withLock { $0.childGone(i) }
            if requeued > 0 {
                logger.info("\(requeued) job(s) the process had not started go to the next process, uncharged", metadata: meta)
            }
            running?.continuation.resume(returning: outcome)
            for (sub, o) in resolved { sub.continuation.resume(returning: o) }
            for w in woken { wake(w) }
            return running != nil
        }

        while true {
            let now = clock.now
            let step: Step = state.withLock { s in
                let slot = s.slots[i]
                if let head = slot.jobs.first, head.sent {
                    let graceOver = dropGraceUntil.map { now >= $0 } ?? true
                    if s.killBusy || (head.stopRequested && (!head.dropWritten || graceOver)) { return .kill }
                }
                if let j = slot.jobs.indices.first(where: { $0 > 0 && slot.jobs[$0].sent && slot.jobs[$0].wantsDrop && !slot.jobs[$0].dropWritten }) {
                    s.slots[i].jobs[j].dropWritten = true
                    return .drop(slot.jobs[j].job)
                }
                if let j = slot.firstUnsent {
                    s.slots[i].jobs[j].sent = true
                    return .send(slot.jobs[j].job, ticket: slot.jobs[j].ticket, onStart: j == 0 ? slot.jobs[j].onStart : nil)
                }
                if s.shuttingDown && slot.jobs.isEmpty { return .stop }
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
                _ = gone(.killed)
                return .ended(unhealthy: false, servedJob: servedJob)
            case .send(let job, let ticket, let onStart):
                do {
                    try PoolFrameIO.writeAll(child.requestFD, PoolFrame.encode(.run(job)))
                } catch {
                    // Not taken: it goes back to the queue; only a job the child was running is charged.
                    state.withLock { s in
                        if let j = s.slots[i].jobs.firstIndex(where: { $0.ticket == ticket }) { s.slots[i].jobs[j].sent = false }
                    }
                    let status = stopChild(child, patience: .milliseconds(500))
                    let wasRunning = gone(.crashed(status.crashReason))
                    logger.warning("worker process died before taking a job; the job goes to the next process",
                                   metadata: meta.merging(["status": "\(status)"]) { $1 })
                    return .ended(unhealthy: !wasRunning, servedJob: servedJob)
                }
                onStart?()
                continue
            case .drop(let job):
                do {
                    try PoolFrameIO.writeAll(child.requestFD, PoolFrame.encode(.drop(id: job.id, queue: job.queue)))
                } catch {
                    let status = stopChild(child, patience: .milliseconds(500))
                    let wasRunning = gone(.crashed(status.crashReason))
                    logger.warning("worker process died while running a job; restarting it",
                                   metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                    return .ended(unhealthy: !wasRunning, servedJob: servedJob)
                }
                continue
            }

            var fds = [
                pollfd(fd: wakePipes[i].read, events: Int16(POLLIN), revents: 0),
                pollfd(fd: child.responseFD, events: Int16(POLLIN), revents: 0),
            ]
            var timeout: Int32 = -1
            if let until = dropGraceUntil {
                let left = until - clock.now
                timeout = max(1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1)
            }
            if poll(&fds, 2, timeout) < 0 { continue }  // EINTR
            if fds[0].revents != 0 { drainWake(i) }
            guard fds[1].revents != 0 else { continue }

            let n = buffer.withUnsafeMutableBytes { read(child.responseFD, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // End of file: the child is gone (or closed its pipe, which is as good as gone).
                let status = stopChild(child, patience: .milliseconds(500))
                if gone(.crashed(status.crashReason)) {
                    // The job's fault (abort, signal, OOM kill): replace the child at once.
                    logger.warning("worker process died while running a job; restarting it",
                                   metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                    return .ended(unhealthy: false, servedJob: servedJob)
                }
                logger.warning("idle worker process died; restarting it",
                               metadata: meta.merging(["reason": "\(status.crashReason)"]) { $1 })
                return .ended(unhealthy: true, servedJob: servedJob)
            }
            buffer.withUnsafeBytes { frames.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do {
                while frames.hasPartialFrame {
                    // Garbage while a job runs is that job's doing (it wrote to fd 4); while idle, the child's.
                    guard state.withLock({ $0.slots[i].jobs.first?.sent == true }) else { throw PoolFrameError.malformed("output while idle") }
                    guard let payload = try frames.nextPayload() else { break }
                    let outcome = try PoolFrame.decodeOutcome(payload)
                    dropGraceUntil = finishRunning(i, outcome, now: clock.now)
                    servedJob = true
                }
            } catch {
                let duringJob = state.withLock { $0.slots[i].jobs.first?.sent == true }
                let status = stopChild(child, patience: .zero)
                logger.warning("worker process broke the pool protocol; restarting it",
                               metadata: meta.merging(["error": "\(error)", "status": "\(status)"]) { $1 })
                _ = gone(.crashed("worker process sent a malformed response"))
                return .ended(unhealthy: !duringJob, servedJob: servedJob)
            }
        }
    }

    /// Slot `i`'s child answered for its running job: ends that job with `outcome`. The job
    /// behind it in the pipe, if any, is the running one now (the child reads it right after
    /// answering): its `onStart` runs. Returns the drop grace deadline if that job is a cancelled
    /// one whose drop was written (the child answers `dropped` at once if it saw the drop in time).
    private func finishRunning(_ i: Int, _ outcome: PoolOutcome, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let (done, next, woken) = state.withLock { s -> (PoolSubmission, PoolSubmission?, [Int]) in
            let done = s.slots[i].jobs.removeFirst()
            let next = s.slots[i].jobs.first.flatMap { $0.sent ? $0 : nil }
            return (done, next, s.dispatch())
        }
        next?.onStart?()
        done.continuation.resume(returning: outcome)
        for w in woken where w != i { wake(w) }
        guard let next, next.stopRequested, next.dropWritten else { return nil }
        return now + Self.dropGrace
    }
}
