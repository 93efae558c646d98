import Logging
import Synchronization

/// What a handler knows about the job it is running.
public struct JobContext: Sendable {
    /// The job's id.
    public let id: String
    /// The job's type (for a typed job, its `name`).
    public let type: String
    /// The queue the job was leased from.
    public let queue: String
    /// 1 for the first run, 2 for the first retry, and so on.
    public let attempt: Int
    /// How many attempts the job has in all (retries + 1).
    public let maxAttempts: Int
    /// The job's timeout; the worker stops the job when it is reached.
    public let timeout: Duration
    /// A logger carrying `job.id`, `job.type` and `attempt` metadata (made on first use: setting
    /// metadata is not free with some log handlers, and most jobs never log).
    public var logger: Logger { box.logger(id: id, type: type, attempt: attempt) }
    private let box: LoggerBox

    /// A context, as the worker makes one. Useful to call a job's `run(context:)` directly in a unit test.
    public init(id: String, type: String, queue: String, attempt: Int, maxAttempts: Int, timeout: Duration, logger: Logger) {
        self.id = id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.box = LoggerBox(base: logger)
    }
}

/// The base logger and, once made, the job's logger with its metadata.
private final class LoggerBox: Sendable {
    private let state: Mutex<(base: Logger, made: Logger?)>

    init(base: Logger) { state = Mutex((base, nil)) }

    func logger(id: String, type: String, attempt: Int) -> Logger {
        state.withLock { s in
            if let made = s.made { return made }
            var l = s.base
            var meta = l.handler.metadata
            // Another producer may have written control characters into either: escaped, so a
            // log line stays one line without terminal sequences.
            meta["job.id"] = .string(SafeText.escaped(id))
            meta["job.type"] = .string(SafeText.escaped(type))
            meta["attempt"] = .string(String(attempt))
            l.handler.metadata = meta
            s.made = l
            return l
        }
    }
}

/// Throw from a handler to fail a job with a chosen error type and message. With
/// `retryable: false` the job is not retried even if it has attempts left.
public struct JobFailure: Error, Sendable, CustomStringConvertible {
    /// The error type stored in the record's `error.type` (default `error`).
    public var type: String
    /// The message stored in the record's `error.message`.
    public var message: String
    /// Whether the job may be retried if it has attempts left.
    public var retryable: Bool

    /// A failure with a message; `retryable: false` makes this attempt the last.
    public init(_ message: String, type: String = "error", retryable: Bool = true) {
        self.type = type
        self.message = message
        self.retryable = retryable
    }

    /// The message.
    public var description: String { message }
}
