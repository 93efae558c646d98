import Synchronization

/// Stops one running job from outside its handler: records why (the first cause wins) and
/// cancels the task the handler runs in, which cancels the handler (an I/O job) or kills its pool
/// child (a CPU job). A stop costs nothing until it happens: no watcher task per job.
///
/// The handler runs in a task of its own, started by ``run(_:)``, whose `Task` handle this keeps
/// while it runs: cancelling a handle is the documented way for one task (the deadline timer, the
/// cancel listener, the heartbeat, shutdown) to cancel another. No reference to a task escapes the
/// closure that produced it. The task is a `Task.immediate`: it starts on the caller's thread at
/// once, so a handler that returns without suspending (a no-op job) costs one task allocation and
/// no scheduling. ``run(_:)`` waits for it and passes its own cancellation on, so the handler never
/// outlives the call, as with a task group.
final class JobControl: Sendable {
    /// Why a job was stopped before its handler returned.
    enum Cause: Sendable, Equatable {
        case timedOut
        case stopped(StopReason)
    }

    private struct State {
        /// The handler's task while it runs (nil before ``run(_:)`` started it and once it ended).
        var task: (any CancellableTask)?
        var cause: Cause?
        var ended = false
    }

    private let state = Mutex(State())

    /// The cause recorded so far, if any.
    var cause: Cause? { state.withLock { $0.cause } }

    /// Runs `body` in a task that a stop cancels, and returns its value once it returned; returns
    /// nil at once, without starting `body`, if the job was already stopped. Call it once, then
    /// ``end()``.
    ///
    /// A stop that comes while `body` runs the synchronous stretch before its first suspension
    /// (the task's handle exists only once `Task.immediate` returns) is recorded at once and
    /// cancels the task when that stretch ends.
    func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T? {
        guard state.withLock({ $0.cause == nil }) else { return nil }
        let task = Task.immediate { await body() }
        let stoppedMeanwhile = state.withLock { s -> Bool in
            if s.cause != nil { return true }
            if !s.ended { s.task = task }
            return false
        }
        if stoppedMeanwhile { task.cancel() }
        // The caller's cancellation (forced shutdown of the whole executor) reaches the handler too.
        return await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
    }

    /// Forgets the handler's task (it returned); returns the cause if a stop came first.
    func end() -> Cause? {
        state.withLock { s in
            s.ended = true
            s.task = nil
            return s.cause
        }
    }

    /// Stops the job unless it already ended or was stopped. Returns whether this call stopped it.
    @discardableResult
    func stop(_ cause: Cause) -> Bool {
        let (stopped, task) = state.withLock { s -> (Bool, (any CancellableTask)?) in
            guard !s.ended, s.cause == nil else { return (false, nil) }
            s.cause = cause
            // No task yet: ``run(_:)`` then never starts the handler, or cancels it once started.
            return (true, s.task)
        }
        // Outside the lock: cancelling runs the task's cancellation handlers (the pool withdraws
        // or kills the job), which must not run under this lock.
        task?.cancel()
        return stopped
    }
}

/// A `Task` handle of any result type, held without an allocation of its own.
private protocol CancellableTask: Sendable {
    func cancel()
}

extension Task: CancellableTask {}
