/// Every Redis key and channel name Kiln uses, built in one place (used only by `KilnStore`).
///
/// Keys of one queue share the hash tag `{queue}` so a script touching them stays in one slot:
///
/// | key | type | holds |
/// |---|---|---|
/// | `P:version` | string | the protocol version of the data under the prefix |
/// | `P:queues` | set | names of all queues ever enqueued to |
/// | `P:cancel` | channel | ids of running jobs someone cancelled |
/// | `P:{q}:pending:io`, `P:{q}:pending:cpu` | list | ids ready to run (LPUSH in, RPOP out) |
/// | `P:{q}:running` | zset | id → lease deadline (ms) |
/// | `P:{q}:scheduled` | zset | id → time a retry becomes due (ms) |
/// | `P:{q}:dead` | zset | id → time it was dead-lettered (ms) |
/// | `P:{q}:job:ID` | hash | the job's record (see `docs/protocol.md`) |
/// | `P:{q}:done:ID` | list | one element once the job is final; waiters block on it |
/// | `P:{q}:done` | channel | the id of each job of the queue that becomes final |
public struct KeySchema: Sendable, Hashable {
    public let prefix: String

    public init(prefix: String = "kiln") {
        self.prefix = prefix
    }

    /// Whether `name` can be a queue name: 1–100 characters of letters, digits and `-_.`.
    public static func isValidQueueName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 100
            && name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "-_.".unicodeScalars.contains($0) }
    }

    /// Throws `KilnError(.invalidInput)` unless `name` is a valid queue name.
    public static func checkQueueName(_ name: String) throws {
        guard isValidQueueName(name) else {
            throw KilnError(.invalidInput, "invalid queue name '\(SafeText.escaped(String(name.prefix(40))))': use 1-100 letters, digits, '-', '_' or '.'")
        }
    }

    /// Whether `prefix` can be a key prefix: 1–64 printable characters without braces, spaces or a trailing colon.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.utf8.count <= 64 && !prefix.hasSuffix(":")
            && prefix.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && $0 != "{" && $0 != "}" }
    }

    public var version: String { "\(prefix):version" }
    public var queues: String { "\(prefix):queues" }
    public var cancelChannel: String { "\(prefix):cancel" }

    /// The common start of every key of `queue`; scripts append `job:ID` and `done:ID` to it.
    public func queuePrefix(_ queue: String) -> String { "\(prefix):{\(queue)}:" }

    public func pending(_ queue: String, _ kind: JobKind) -> String { queuePrefix(queue) + "pending:" + kind.rawValue }
    public func running(_ queue: String) -> String { queuePrefix(queue) + "running" }
    public func scheduled(_ queue: String) -> String { queuePrefix(queue) + "scheduled" }
    public func dead(_ queue: String) -> String { queuePrefix(queue) + "dead" }
    public func job(_ queue: String, _ id: String) -> String { queuePrefix(queue) + "job:" + id }
    public func done(_ queue: String, _ id: String) -> String { queuePrefix(queue) + "done:" + id }
    /// The channel on which every job of `queue` that becomes final is announced (its id).
    public func doneChannel(_ queue: String) -> String { queuePrefix(queue) + "done" }
}
