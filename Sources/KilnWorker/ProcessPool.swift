#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The worker's supervised pool of child processes for CPU jobs.
///
/// Each child is this same executable re-run in child mode (see ``PoolChild``), without the
/// parent's `KILN_*`/`REDIS*` environment. Each child slot is owned by one dedicated OS thread that
/// talks to the child over pipes, so no blocking call ever runs on Swift's cooperative threads.
/// Children that crash or hang are killed, reaped and respawned; the pool itself stays up.
///
/// Run it as a `Service` (it spawns its children in ``run()`` and stops them on graceful shutdown
/// or cancellation) and submit jobs with ``execute(_:onStart:)``.
///
/// With `pipelined`, each child holds two jobs: the one it runs and the next, already written to
/// its pipe, which it starts without waiting for the parent. A job counts as taken (its
/// `onStart` runs) when it is written to an idle child, or, waiting in a pipe, when the child's
/// answer for the job before it arrives (the child reads its next request right after writing
/// that answer). A job still in a pipe is withdrawn with a drop request; a child that dies takes
/// only its running job with it: the jobs behind it go back to the queue, uncharged.
package final class ProcessPool: Service, Sendable {
    let executable: String
    let environment: [String]
    let logger: Logger
    let killGrace: Duration
    /// How much nicer than this process the children run (0–19).
    let niceness: Int32
    /// Per slot: the pipe that wakes the slot's thread (read end, write end).
    let wakePipes: [(read: Int32, write: Int32)]
    let state: Mutex<PoolState>

    /// The number of child processes.
    package var size: Int { wakePipes.count }

    /// - Parameters:
    ///   - size: Number of child processes (at least 1).
    ///   - executable: The program to run in child mode; by default the running executable.
    ///   - killGrace: How long a child gets to exit after SIGTERM before it gets SIGKILL.
    ///   - niceness: How much nicer than this process the children run (clamped to 0–19): with 10,
    ///     a busy child yields the CPU to the worker's async loop (and to a Redis on the same host)
    ///     whenever they have work, so CPU jobs do not delay I/O jobs; idle cores still go to CPU jobs.
    ///   - pipelined: Keep each child's next job in its pipe (prefetch; see above).
    package init(size: Int, executable: String = ProcessPool.currentExecutable, logger: Logger, killGrace: Duration = .seconds(2), niceness: Int = 0,
                pipelined: Bool = false) {
        precondition(size >= 1, "a process pool needs at least one child")
        self.niceness = Int32(min(19, max(0, niceness)))
        self.executable = executable
        self.environment = Self.childEnvironment()
        self.logger = logger
        self.killGrace = killGrace
        self.wakePipes = (0..<size).map { _ in
            var fds: [Int32] = [-1, -1]
            precondition(pipe(&fds) == 0, "pipe failed: \(String(cString: strerror(errno)))")
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            return (fds[0], fds[1])
        }
        self.state = Mutex(PoolState(slots: Array(repeating: SlotState(), count: size), depth: pipelined ? 2 : 1))
    }

    deinit {
        for p in wakePipes {
            close(p.read)
            close(p.write)
        }
    }

    /// The pids of the children currently alive (for tests and diagnostics).
    package func childPIDs() -> [pid_t] {
        state.withLock { s in s.slots.map(\.pid).filter { $0 != 0 } }
    }

    /// Runs a job in a child, waiting for one if all are busy or being respawned; `onStart` is
    /// called (on a pool thread) when a child takes it.
    ///
    /// If the calling task is cancelled, the child running the job is killed (SIGTERM, then
    /// SIGKILL after the kill grace) and respawned, and the result is `.killed`; a job no child
    /// has taken yet is withdrawn (`.killed`, never run). A child that dies on its own gives
    /// `.crashed(reason)` for the job it was running. After ``handBackUnstarted()`` the result is
    /// `.dropped` for jobs not started. After shutdown the result is
    /// `.crashed("worker process pool is shut down")`.
    package func execute(_ job: PoolJob, onStart: (@Sendable () -> Void)? = nil) async -> PoolOutcome {
        let ticket = state.withLock { s in
            s.nextTicket &+= 1
            return s.nextTicket
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<PoolOutcome, Never>) in
                let (rejected, woken): (PoolOutcome?, [Int]) = state.withLock { s in
                    if s.shuttingDown { return (.crashed(Self.shutDownReason), []) }
                    if s.handingBack { return (.dropped, []) }
                    if Task.isCancelled { return (.killed, []) }
                    s.queue.append(PoolSubmission(ticket: ticket, job: job, continuation: c, onStart: onStart))
                    return (nil, s.dispatch())
                }
                if let rejected { c.resume(returning: rejected) }
                for i in woken { wake(i) }
            }
        } onCancel: {
            let (withdrawn, woken) = state.withLock { s in s.cancel(ticket) }
            withdrawn?.resume(returning: .killed)
            for i in woken { wake(i) }
        }
    }

    /// Hands back every job no child has started: queued ones at once (`.dropped`), those waiting
    /// in a pipe once their child confirms it did not start them (or, if it had, when they end).
    /// Jobs submitted afterwards are answered `.dropped` at once. For graceful shutdown with
    /// prefetch: running jobs finish, the rest go back to Redis without running.
    package func handBackUnstarted() {
        let (resolved, woken) = state.withLock { s in s.takeUnstarted() }
        for sub in resolved { sub.continuation.resume(returning: .dropped) }
        for i in woken { wake(i) }
    }

    static let shutDownReason = "worker process pool is shut down"

    /// Spawns the children and supervises them until graceful shutdown or cancellation, then
    /// stops them all: jobs already running finish on graceful shutdown and are killed on
    /// cancellation.
    package func run() async throws {
        let first = state.withLock { s in
            if s.started { return false }
            s.started = true
            s.threadsRunning = size
            return true
        }
        guard first else {
            logger.warning("process pool is already running")
            return
        }
        // Writing to a dead child's pipe must fail with EPIPE, not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        logger.info("starting process pool", metadata: ["size": "\(size)", "executable": "\(executable)"])
        for i in 0..<size {
            let thread = Thread { [self] in runSlot(i) }
            thread.name = "kiln-pool-\(i)"
            thread.start()
        }
        try? await gracefulShutdown()
        beginShutdown(killBusy: Task.isCancelled)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s in
                    if s.threadsRunning == 0 { return true }
                    s.stopped = c
                    return false
                }
                if done { c.resume() }
            }
        } onCancel: {
            beginShutdown(killBusy: true)
        }
        logger.info("process pool stopped")
    }

    /// Marks the pool shut down, hands back queued jobs (`.dropped`: none started) and tells every
    /// slot thread to stop.
    func beginShutdown(killBusy: Bool) {
        let queued = state.withLock { s in
            s.shuttingDown = true
            if killBusy { s.killBusy = true }
            defer { s.queue.removeAll() }
            return s.queue
        }
        for sub in queued { sub.continuation.resume(returning: .dropped) }
        for i in 0..<size { wake(i) }
    }

    /// Wakes slot `i`'s thread so it re-reads the shared state.
    func wake(_ i: Int) {
        var b: UInt8 = 1
        _ = write(wakePipes[i].write, &b, 1)
    }
}
