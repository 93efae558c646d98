#if canImport(Glibc)
import Glibc
#endif

/// One job given to the pool, from `execute` until its outcome.
struct PoolSubmission: Sendable {
    let ticket: UInt64
    let job: PoolJob
    let continuation: CheckedContinuation<PoolOutcome, Never>
    /// Called when a child takes the job (its timeout starts then).
    let onStart: (@Sendable () -> Void)?
    /// Written to its child's pipe.
    var sent = false
    /// The caller was cancelled: kill the child if it runs the job, withdraw it if it waits.
    var stopRequested = false
    /// The pool hands back what has not started: withdraw it if it waits in a pipe (if it
    /// turns out to have started, it runs to its end like any running job).
    var handBack = false
    /// A drop request for it was written to the pipe.
    var dropWritten = false

    /// Whether it waits in a pipe and should be withdrawn.
    var wantsDrop: Bool { stopRequested || handBack }
}

/// The pool's shared state, protected by `ProcessPool.state`.
struct PoolState: Sendable {
    var slots: [SlotState]
    /// Jobs no slot has taken yet, oldest first (jobs handed back by a dead child go first).
    var queue: [PoolSubmission] = []
    /// Jobs a child holds at once: 1, or 2 when the next job waits in its pipe (prefetch).
    let depth: Int
    var nextTicket: UInt64 = 0
    var started = false
    var shuttingDown = false
    /// Hand back jobs that have not started instead of running them (graceful shutdown with prefetch).
    var handingBack = false
    /// Kill jobs that are still running instead of letting them finish.
    var killBusy = false
    var threadsRunning = 0
    /// `run()` waiting for the slot threads to finish.
    var stopped: CheckedContinuation<Void, Never>?

    /// Gives queued jobs to slots that have a live child and room, the least loaded first (an idle
    /// child before a pipe behind a running job). Returns the slots to wake.
    mutating func dispatch() -> [Int] {
        var woken: [Int] = []
        while !queue.isEmpty && !shuttingDown && !handingBack {
            var best: Int?
            for i in slots.indices where slots[i].pid != 0 && slots[i].jobs.count < depth {
                if best.map({ slots[i].jobs.count < slots[$0].jobs.count }) ?? true { best = i }
            }
            guard let b = best else { break }
            slots[b].jobs.append(queue.removeFirst())
            if !woken.contains(b) { woken.append(b) }
        }
        return woken
    }

    /// The caller holding `ticket` was cancelled. A job no child holds yet is withdrawn (its
    /// continuation is returned, to be resumed with `.killed`); one in a child is marked, and
    /// the slot to wake is returned: its thread kills the child (running) or writes a drop (waiting
    /// in the pipe).
    mutating func cancel(_ ticket: UInt64) -> (withdrawn: CheckedContinuation<PoolOutcome, Never>?, wake: [Int]) {
        if let q = queue.firstIndex(where: { $0.ticket == ticket }) {
            return (queue.remove(at: q).continuation, [])
        }
        for i in slots.indices {
            guard let j = slots[i].jobs.firstIndex(where: { $0.ticket == ticket }) else { continue }
            if !slots[i].jobs[j].sent {
                let c = slots[i].jobs.remove(at: j).continuation
                return (c, dispatch())
            }
            slots[i].jobs[j].stopRequested = true
            return (nil, [i])
        }
        return (nil, [])
    }

    /// Slot `i`'s child is gone (died, killed, or stopped). Returns the job it was running, if any
    /// (its outcome is the caller's to give), the jobs to resolve now, and the slots to wake. The
    /// jobs it held but had not started are not charged with its end: they go back to the front
    /// of the queue, or are withdrawn if their callers were cancelled, or handed back if the
    /// pool is shutting down or handing back.
    mutating func childGone(_ i: Int) -> (running: PoolSubmission?, resolved: [(PoolSubmission, PoolOutcome)], requeued: Int, wake: [Int]) {
        slots[i].pid = 0
        var jobs = slots[i].jobs
        slots[i].jobs = []
        let running = jobs.first?.sent == true ? jobs.removeFirst() : nil
        var resolved: [(PoolSubmission, PoolOutcome)] = []
        var back: [PoolSubmission] = []
        for var sub in jobs {
            if sub.stopRequested {
                resolved.append((sub, .killed))
            } else if shuttingDown || handingBack {
                resolved.append((sub, .dropped))
            } else {
                sub.sent = false
                sub.dropWritten = false
                back.append(sub)
            }
        }
        queue.insert(contentsOf: back, at: 0)
        return (running, resolved, back.count, dispatch())
    }

    /// Takes every job that no child has started: the queue's and those assigned but not written
    /// yet are returned (to be resumed with `.dropped`); those waiting in a pipe are marked, and
    /// their slots returned to wake (their threads write the drops).
    mutating func takeUnstarted() -> (resolved: [PoolSubmission], wake: [Int]) {
        handingBack = true
        var resolved = queue
        queue = []
        var wake: [Int] = []
        for i in slots.indices {
            var kept: [PoolSubmission] = []
            for (j, var sub) in slots[i].jobs.enumerated() {
                if !sub.sent {
                    resolved.append(sub)
                    continue
                }
                if j > 0 {
                    sub.handBack = true
                    if !wake.contains(i) { wake.append(i) }
                }
                kept.append(sub)
            }
            slots[i].jobs = kept
        }
        return (resolved, wake)
    }
}

/// One slot of the pool, protected by `ProcessPool.state`.
struct SlotState: Sendable {
    /// The live child's pid, 0 while there is none.
    var pid: pid_t = 0
    /// Jobs given to this slot, in order. Those written to the pipe come first: the first of them
    /// is running (the child took it), the others wait in the pipe. Then those not written yet.
    var jobs: [PoolSubmission] = []

    /// The index of the first job not written to the pipe yet.
    var firstUnsent: Int? { jobs.firstIndex { !$0.sent } }
}
