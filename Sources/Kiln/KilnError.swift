import KilnRedis

/// An error from Kiln's client or worker: a stable `code` for programs and a one-line `message`
/// for people, in the style of `ServiceGroupError`. Messages never contain Redis passwords.
public struct KilnError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of error it was: compare with the static values below, which are stable.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code as text, e.g. `no_such_job`.
        public let raw: String
        /// A code from its text.
        public init(_ raw: String) { self.raw = raw }
        /// Bad input from the caller: malformed JSON, bad duration, bad option value.
        public static let invalidInput = Code("invalid_input")
        /// A payload or result is larger than the configured limit.
        public static let tooLarge = Code("too_large")
        /// No job with this id exists (never enqueued, or its record expired).
        public static let noSuchJob = Code("no_such_job")
        /// Waiting for a job ended before the job finished.
        public static let waitTimedOut = Code("wait_timed_out")
        /// The job finished without success (failed, timed_out, cancelled, dead).
        public static let jobUnsuccessful = Code("job_unsuccessful")
        /// A job with the same id already exists.
        public static let duplicateJob = Code("duplicate_job")
        /// Talking to Redis failed; the message says where and why.
        public static let redis = Code("redis")
        /// A reply from Redis did not have the expected shape (version mismatch, hand-edited keys).
        public static let protocolViolation = Code("protocol")
        /// The key prefix holds data of another protocol version (its version marker).
        public static let versionMismatch = Code("version_mismatch")
        /// The code as text.
        public var description: String { raw }
    }

    /// What kind of error it was.
    public let code: Code
    /// One sentence naming the problem.
    public let message: String
    /// The job's final record, for `jobUnsuccessful`.
    public let record: JobRecord?

    /// An error with a code, a sentence and, for `jobUnsuccessful`, the job's record.
    public init(_ code: Code, _ message: String, record: JobRecord? = nil) {
        self.code = code
        self.message = message
        self.record = record
    }

    /// The message.
    public var description: String { message }

    /// Equal when code and message are equal (the record is not compared).
    public static func == (a: KilnError, b: KilnError) -> Bool { a.code == b.code && a.message == b.message }

    static func wrap(_ error: Error) -> Error {
        if let r = error as? RedisError { return KilnError(.redis, r.message) }
        return error
    }
}
