/// Every Redis key and channel name of protocol v3 (`docs/protocol.md`, "Keys"), built in one
/// place (used only by `KilnStore`). No key per job: a queue is a handful of keys, all with the
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
/// `Q` is `queuePrefix(q)`, `P:{q}:`. 
package struct KeySchema: Sendable, Hashable {
    package let prefix: String

    package init(prefix: String = "kiln") {
        self.prefix = prefix
    }

    /// Whether `name` can be a queue name: 1–100 characters of letters, digits and `-_.`.
    package static func isValidQueueName(_ name: String) -> Bool {
        // Bytes, not Unicode properties: this runs for every job enqueued.
        !name.isEmpty && name.utf8.count <= 100
            && name.utf8.allSatisfy { b in
                (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F || b == 0x2E
            }
    }

    /// Throws `KilnError(.invalidInput)` unless `name` is a valid queue name.
    package static func checkQueueName(_ name: String) throws {
        guard isValidQueueName(name) else {
            throw KilnError(.invalidInput, "invalid queue name '\(SafeText.escaped(String(name.prefix(40))))': use 1-100 letters, digits, '-', '_' or '.'")
        }
    }

    /// Whether `prefix` can be a key prefix: 1–64 printable characters without braces, spaces or a trailing colon.
    package static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.utf8.count <= 64 && !prefix.hasSuffix(":")
            && prefix.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && $0 != "{" && $0 != "}" }
    }

    package var version: String { "\(prefix):version" }
    package var queues: String { "\(prefix):queues" }
    package var cancelChannel: String { "\(prefix):cancel" }

    /// `Q`, the common start of every key of `queue` (trailing colon included); scripts take it as `ARGV[1]`.
    package func queuePrefix(_ queue: String) -> String { "\(prefix):{\(queue)}:" }

    package func jobs(_ queue: String) -> String { queuePrefix(queue) + "jobs" }
    package func ready(_ queue: String, _ kind: JobKind) -> String { queuePrefix(queue) + "ready:" + kind.rawValue }
    package func leases(_ queue: String) -> String { queuePrefix(queue) + "leases" }
    package func later(_ queue: String) -> String { queuePrefix(queue) + "later" }
    package func dead(_ queue: String) -> String { queuePrefix(queue) + "dead" }
    package func expiry(_ queue: String) -> String { queuePrefix(queue) + "expiry" }
    package func revived(_ queue: String) -> String { queuePrefix(queue) + "revived" }
    /// The channel on which each call that made jobs of `queue` final announces their ids.
    package func doneChannel(_ queue: String) -> String { queuePrefix(queue) + "done" }
}
