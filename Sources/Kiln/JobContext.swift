import Logging

/// What a handler knows about the job it is running.
public struct JobContext: Sendable {
    public let id: String
    public let type: String
    public let queue: String
    /// 1 for the first run, 2 for the first retry, and so on.
    public let attempt: Int
    public let maxAttempts: Int
    /// The job's timeout; the worker stops the job when it is reached.
    public let timeout: Duration
    /// A logger carrying `job.id`, `job.type` and `attempt` metadata.
    public let logger: Logger

    public init(id: String, type: String, queue: String, attempt: Int, maxAttempts: Int, timeout: Duration, logger: Logger) {
        self.id = id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        var l = logger
        l[metadataKey: "job.id"] = "\(id)"
        l[metadataKey: "job.type"] = "\(type)"
        l[metadataKey: "attempt"] = "\(attempt)"
        self.logger = l
    }
}

/// Throw from a handler to fail a job with a chosen error type and message. With
/// `retryable: false` the job is not retried even if it has attempts left.
public struct JobFailure: Error, Sendable, CustomStringConvertible {
    public var type: String
    public var message: String
    public var retryable: Bool

    public init(_ message: String, type: String = "error", retryable: Bool = true) {
        self.type = type
        self.message = message
        self.retryable = retryable
    }

    public var description: String { message }
}
