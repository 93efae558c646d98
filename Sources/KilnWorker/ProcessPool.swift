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
/// or cancellation) and submit jobs with ``execute(_:)``.
public final class ProcessPool: Service, Sendable {
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
    public var size: Int { wakePipes.count }

    /// - Parameters:
    ///   - size: Number of child processes (at least 1).
    ///   - executable: The program to run in child mode; by default the running executable.
    ///   - killGrace: How long a child gets to exit after SIGTERM before it gets SIGKILL.
    ///   - niceness: How much nicer than this process the children run (clamped to 0–19): with 10,
    ///     a busy child yields the CPU to the worker's async loop (and to a Redis on the same host)
    ///     whenever they have work, so CPU jobs do not delay I/O jobs; idle cores still go to CPU jobs.
    public init(size: Int, executable: String = ProcessPool.currentExecutable, logger: Logger, killGrace: Duration = .seconds(2), niceness: Int = 0) {
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
        self.state = Mutex(PoolState(slots: Array(repeating: SlotState(), count: size)))
    }

    deinit {
        for p in wakePipes {
            close(p.read)
            close(p.write)
        }
    }

    /// The pids of the children currently alive (for tests and diagnostics).
    public func childPIDs() -> [pid_t] {
        state.withLock { s in s.slots.map(\.pid).filter { $0 != 0 } }
    }

    /// Runs a job in an idle child, waiting for one if all are busy or being respawned.
    ///
    /// If the calling task is cancelled, the child running the job is killed (SIGTERM, then
    /// SIGKILL after the kill grace) and respawned, and the result is `.killed`. A child that dies
    /// on its own gives `.crashed(reason)`. After shutdown the result is
    /// `.crashed("worker process pool is shut down")`.
    public func execute(_ job: PoolJob) async -> PoolOutcome {
        let ticket = state.withLock { s in
            s.nextTicket &+= 1
            return s.nextTicket
        }
        // 1. Claim a slot.
        let claimed: Int? = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Int?, Never>) in
                let immediate: Int?? = state.withLock { s in
                    if s.shuttingDown || Task.isCancelled { return .some(nil) }
                    if let i = s.idle.popLast() {
                        s.claim(i, ticket: ticket)
                        return .some(i)
                    }
                    s.waiters.append(PoolState.Waiter(ticket: ticket, continuation: c))
                    return .none
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                s.waiters.firstIndex { $0.ticket == ticket }.map { s.waiters.remove(at: $0) }
            }
            waiter?.continuation.resume(returning: nil)
        }
        guard let slot = claimed else {
            return state.withLock { $0.shuttingDown } ? .crashed(Self.shutDownReason) : .killed
        }
        // 2. Hand the job to the slot's thread and wait for its outcome.
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<PoolOutcome, Never>) in
                let rejected: (PoolOutcome, PoolState.Waiter?)? = state.withLock { s in
                    if s.shuttingDown { return (.crashed(Self.shutDownReason), s.release(slot)) }
                    if s.slots[slot].killRequested || Task.isCancelled { return (.killed, s.release(slot)) }
                    s.slots[slot].job = job
                    s.slots[slot].continuation = c
                    return nil
                }
                if let (outcome, waiter) = rejected {
                    waiter?.continuation.resume(returning: slot)
                    c.resume(returning: outcome)
                }
                wake(slot)
            }
        } onCancel: {
            let released: (CheckedContinuation<PoolOutcome, Never>, PoolState.Waiter?)? = state.withLock { s in
                guard s.slots[slot].ticket == ticket, s.slots[slot].phase == .busy else { return nil }
                if let c = s.slots[slot].continuation {
                    // Submitted but not yet sent to the child: nothing to kill.
                    return (c, s.release(slot))
                }
                s.slots[slot].killRequested = true
                return nil
            }
            if let (c, waiter) = released {
                waiter?.continuation.resume(returning: slot)
                c.resume(returning: .killed)
            }
            wake(slot)
        }
    }

    static let shutDownReason = "worker process pool is shut down"

    /// Spawns the children and supervises them until graceful shutdown or cancellation, then
    /// stops them all: jobs already running finish on graceful shutdown and are killed on
    /// cancellation.
    public func run() async throws {
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

    /// Marks the pool shut down, fails waiting callers and tells every slot thread to stop.
    func beginShutdown(killBusy: Bool) {
        let waiters = state.withLock { s in
            s.shuttingDown = true
            if killBusy { s.killBusy = true }
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.continuation.resume(returning: nil) }
        for i in 0..<size { wake(i) }
    }

    /// Wakes slot `i`'s thread so it re-reads the shared state.
    func wake(_ i: Int) {
        var b: UInt8 = 1
        _ = write(wakePipes[i].write, &b, 1)
    }
}

/// The pool's shared state, protected by `ProcessPool.state`.
struct PoolState: Sendable {
    struct Waiter: Sendable {
        var ticket: UInt64
        var continuation: CheckedContinuation<Int?, Never>
    }

    var slots: [SlotState]
    /// Slots with a live, idle child, ready to be claimed.
    var idle: [Int] = []
    /// Callers waiting for an idle slot, oldest first; resumed with the slot or nil.
    var waiters: [Waiter] = []
    var nextTicket: UInt64 = 0
    var started = false
    var shuttingDown = false
    /// Kill jobs that are still running instead of letting them finish.
    var killBusy = false
    var threadsRunning = 0
    /// `run()` waiting for the slot threads to finish.
    var stopped: CheckedContinuation<Void, Never>?

    /// Marks slot `i` claimed by the caller holding `ticket`.
    mutating func claim(_ i: Int, ticket: UInt64) {
        slots[i].phase = .busy
        slots[i].ticket = ticket
        slots[i].killRequested = false
        slots[i].job = nil
        slots[i].continuation = nil
    }

    /// Ends the claim on slot `i`. If it has a live child it becomes idle: handed to the oldest
    /// waiter (returned, to be resumed with `i` outside the lock) or put on the idle list.
    mutating func release(_ i: Int) -> Waiter? {
        slots[i].killRequested = false
        slots[i].job = nil
        slots[i].continuation = nil
        guard slots[i].pid != 0 else {
            slots[i].phase = .starting
            return nil
        }
        slots[i].phase = .idle
        if shuttingDown { return nil }
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            claim(i, ticket: w.ticket)
            return w
        }
        if !idle.contains(i) { idle.append(i) }
        return nil
    }

    /// Takes slot `i` out of service (its child is gone or stopping), keeping a claim if any.
    mutating func retire(_ i: Int) {
        slots[i].pid = 0
        idle.removeAll { $0 == i }
        if slots[i].phase == .idle { slots[i].phase = .starting }
    }
}

/// One slot of the pool, protected by `ProcessPool.state`.
struct SlotState: Sendable {
    enum Phase: Sendable { case starting, idle, busy }

    /// The live child's pid, 0 while there is none.
    var pid: pid_t = 0
    var phase: Phase = .starting
    /// The `execute` call that claimed the slot.
    var ticket: UInt64 = 0
    /// A job submitted but not yet sent to the child, with its caller's continuation.
    var job: PoolJob?
    var continuation: CheckedContinuation<PoolOutcome, Never>?
    /// The caller was cancelled: kill the child running its job.
    var killRequested = false
}
