import KilnRedis

/// The whole Redis contract of Kiln (`docs/protocol.md`) behind one type: one method per script,
/// with typed arguments and replies, the Lua text beside the method that runs it
/// (`KilnStore+fetch.swift` and so on), key names from `KeySchema`, and script loading, `NOSCRIPT`
/// reload and the client's retry policy in `KilnStore+scripts.swift` and `KilnStore+retry.swift`.
///
/// Client, worker, CLI, chaos run and benchmarks talk to Redis only through a store: no other file
/// knows a key name or a script. Its API speaks of jobs, queues and attempts, not of keys, so the
/// data model under it can change without changing its callers.
///
/// A store is a small value (a connection, the key builder and two shared caches): cheap to copy
/// into many tasks. Stores made from one another with `on(_:)` share their caches.
public struct KilnStore: Sendable {
    /// The key builder. Public for tests and tools that must look at raw keys; Kiln's own code
    /// outside the store never uses it.
    public let keys: KeySchema
    /// The pipelined connection every call goes through.
    public let connection: RedisConnection
    let shas: ScriptCache
    let marker: VersionGate

    /// A store for key prefix `prefix` (checked by the caller with `KeySchema.isValidPrefix`).
    public init(prefix: String, connection: RedisConnection) {
        self.keys = KeySchema(prefix: prefix)
        self.connection = connection
        self.shas = ScriptCache()
        self.marker = VersionGate()
    }

    private init(keys: KeySchema, connection: RedisConnection, shas: ScriptCache, marker: VersionGate) {
        self.keys = keys
        self.connection = connection
        self.shas = shas
        self.marker = marker
    }

    /// The same store on another connection (the worker's heartbeat thread has its own); script
    /// SHAs and the version check are shared.
    public func on(_ connection: RedisConnection) -> KilnStore {
        KilnStore(keys: keys, connection: connection, shas: shas, marker: marker)
    }

    /// The prefix this store works under.
    public var prefix: String { keys.prefix }

    /// Where the store's Redis is, for messages.
    public var address: String { connection.configuration.address }
}
