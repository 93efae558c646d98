import Kiln

/// One CPU job handed to the process pool: everything a child needs, and nothing else (no
/// Redis location, no credentials).
package struct PoolJob: Sendable, Equatable {
    package var id: String
    package var type: String
    package var queue: String
    /// The payload as JSON text.
    package var payload: String
    package var attempt: Int
    package var maxAttempts: Int
    package var timeoutMs: Int64

    package init(id: String, type: String, queue: String, payload: String, attempt: Int, maxAttempts: Int, timeoutMs: Int64) {
        self.id = id
        self.type = type
        self.queue = queue
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.timeoutMs = timeoutMs
    }
}

/// How a pool job ended.
package enum PoolOutcome: Sendable, Equatable {
    /// The handler returned; the result as JSON text.
    case succeeded(String)
    /// The handler threw: error type code, message, whether a retry may help.
    case failed(type: String, message: String, retryable: Bool)
    /// The child died on its own: a description such as `worker process crashed: signal 11`
    /// or `worker process exited with status 3`.
    case crashed(String)
    /// The caller's task was cancelled (timeout, cancel, shutdown) and the child was killed, or
    /// the job was withdrawn before a child took it.
    case killed
    /// The job was handed back without running: it waited (in the pool's queue or, prefetched, in
    /// a child's pipe) when the pool was told to hand back what had not started (graceful
    /// shutdown), or it was withdrawn from a pipe and the child confirmed it never started it.
    case dropped
}

/// A request from the pool to a child.
package enum PoolRequest: Sendable, Equatable {
    /// Run this job and answer its outcome.
    case run(PoolJob)
    /// If the job with this id and queue was sent earlier and is not started yet, do not run it:
    /// answer ``PoolOutcome/dropped`` for it instead. A drop for a job already started (or done)
    /// is ignored; the job's own outcome is its answer.
    case drop(id: String, queue: String)
}
