import Kiln

/// One CPU job handed to the process pool: everything a child needs, and nothing else (no
/// Redis location, no credentials).
public struct PoolJob: Sendable, Equatable {
    public var id: String
    public var type: String
    public var queue: String
    /// The payload as JSON text.
    public var payload: String
    public var attempt: Int
    public var maxAttempts: Int
    public var timeoutMs: Int64

    public init(id: String, type: String, queue: String, payload: String, attempt: Int, maxAttempts: Int, timeoutMs: Int64) {
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
public enum PoolOutcome: Sendable, Equatable {
    /// The handler returned; the result as JSON text.
    case succeeded(String)
    /// The handler threw: error type code, message, whether a retry may help.
    case failed(type: String, message: String, retryable: Bool)
    /// The child died on its own: a description such as `worker process crashed: signal 11`
    /// or `worker process exited with status 3`.
    case crashed(String)
    /// The caller's task was cancelled (timeout, cancel, shutdown) and the child was killed.
    case killed
}
