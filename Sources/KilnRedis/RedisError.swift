/// An error from the Redis client. `message` is one sentence a user can act on; it names the
/// server (`host:port` or socket path) and, where there is one, the command. It never contains a password.
public struct RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure it was: compare with the static values below, which are stable.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        /// The URL given for the server could not be parsed.
        public static let invalidURL = Code(raw: "invalid_url")
        /// No connection could be made (refused, unreachable, timed out).
        public static let connectionFailed = Code(raw: "connection_failed")
        /// The connection broke or timed out while a command was in flight; the command may or may not have run.
        public static let connectionLost = Code(raw: "connection_lost")
        /// The server rejected the credentials.
        public static let authenticationFailed = Code(raw: "authentication_failed")
        /// The server answered the command with an error reply.
        public static let server = Code(raw: "server_error")
        /// The server answered, but cannot serve commands for now (LOADING its data set after a
        /// restart, BUSY with a script, TRYAGAIN, MASTERDOWN, READONLY during a failover).
        public static let serverUnavailable = Code(raw: "server_unavailable")
        /// A reply did not have the shape the caller expected.
        public static let unexpectedReply = Code(raw: "unexpected_reply")
        /// The connection was closed by its owner.
        public static let closed = Code(raw: "closed")
        /// The code as text, e.g. `connection_failed`.
        public var description: String { raw }
    }

    /// What kind of failure it was.
    public let code: Code
    /// One sentence naming the server, the command if any, and the problem.
    public let message: String

    /// An error with a code and a sentence a user can act on.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// True for errors after which retrying the same command later may succeed (network trouble).
    public var isTransient: Bool {
        code == .connectionFailed || code == .connectionLost || code == .serverUnavailable
    }

    /// The error for an error reply, classified: replies that mean "not now" are transient.
    package static func reply(_ text: String, command: String, address: String) -> RedisError {
        let word = text.split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
        let code: Code = ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY"].contains(word) ? .serverUnavailable : .server
        return RedisError(code, "Redis at \(address) answered \(command) with an error: \(text)")
    }
}
