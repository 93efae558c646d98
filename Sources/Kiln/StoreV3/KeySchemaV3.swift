/// Every Redis key and channel name of protocol v3 (`docs/protocol-v3.md`, "Keys"), built in one
/// place (used only by `KilnStoreV3`). No key per job: a queue is a handful of keys, all with the
/// hash tag `{queue}` so that every script touches one slot.
///
/// | key | type | holds |
/// |---|---|---|
/// | `P:version` | string | `3` |
/// | `P:queues` | set | names of all queues ever enqueued to |
/// | `P:cancel` | channel | `Q id` of each running job someone cancelled |
/// | `Q:jobs` | hash | id → the job's MessagePack record |
/// | `Q:ready:io`, `Q:ready:cpu` | list | ids ready to run (RPUSH in, LPOP out) |
/// | `Q:leases` | zset | id → lease deadline (ms): exactly the running jobs |
/// | `Q:later` | zset | id → time a retry becomes due (ms) |
/// | `Q:dead` | zset | id → time it was dead-lettered (ms) |
/// | `Q:expiry` | zset | member "id id …" → second (in ms) their results expire |
/// | `Q:revived` | set | ids `retry_dead` put back after they were final |
/// | `Q:done` | channel | ids made final by one call, separated by spaces |
///
/// `Q` is `queuePrefix(q)`, `P:{q}:`. Prefix and queue name rules are those of `KeySchema`.
public struct KeySchemaV3: Sendable, Hashable {
    public let prefix: String

    public init(prefix: String = "kiln") {
        self.prefix = prefix
    }

    public var version: String { "\(prefix):version" }
    public var queues: String { "\(prefix):queues" }
    public var cancelChannel: String { "\(prefix):cancel" }

    /// `Q`, the common start of every key of `queue` (trailing colon included); scripts take it as `ARGV[1]`.
    public func queuePrefix(_ queue: String) -> String { "\(prefix):{\(queue)}:" }

    public func jobs(_ queue: String) -> String { queuePrefix(queue) + "jobs" }
    public func ready(_ queue: String, _ kind: JobKind) -> String { queuePrefix(queue) + "ready:" + kind.rawValue }
    public func leases(_ queue: String) -> String { queuePrefix(queue) + "leases" }
    public func later(_ queue: String) -> String { queuePrefix(queue) + "later" }
    public func dead(_ queue: String) -> String { queuePrefix(queue) + "dead" }
    public func expiry(_ queue: String) -> String { queuePrefix(queue) + "expiry" }
    public func revived(_ queue: String) -> String { queuePrefix(queue) + "revived" }
    /// The channel on which each call that made jobs of `queue` final announces their ids.
    public func doneChannel(_ queue: String) -> String { queuePrefix(queue) + "done" }
}
