import Synchronization

/// Stops one running job from outside its handler: records why (the first cause wins) and
/// cancels the job's task, which cancels the handler (an I/O job) or kills its pool child (a CPU
/// job). Replaces a watcher task per job: a stop costs nothing until it happens.
final class JobControl: @unchecked Sendable {
    /// Why a job was stopped before its handler returned.
    enum Cause: Sendable, Equatable {
        case timedOut
        case stopped(StopReason)
    }

    /// The job's task, used only under the lock and only while the task is alive.
    private struct TaskRef: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    private struct State {
        var task: TaskRef?
        var cause: Cause?
        var ended = false
    }

    // @unchecked: `UnsafeCurrentTask` is only used under this lock and only between `begin` and
    // `end`, which run on the job's own task while it is alive.
    private let state = Mutex(State())

    /// The cause recorded so far, if any.
    var cause: Cause? { state.withLock { $0.cause } }

    /// Attaches the calling task: a stop from now on cancels it. Returns false if the job was
    /// already stopped (the caller must not start the handler).
    func begin() -> Bool {
        let ref: TaskRef? = withUnsafeCurrentTask { task in task.map { TaskRef(task: $0) } }
        return state.withLock { s in
            s.task = ref
            return s.cause == nil
        }
    }

    /// Detaches the task (the handler returned); returns the cause if a stop came first.
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
        state.withLock { s in
            guard !s.ended, s.cause == nil else { return false }
            s.cause = cause
            s.task?.task.cancel()
            return true
        }
    }
}
