import KilnRedis

/// The Redis contract of protocol v3 (`docs/protocol-v3.md`) behind one type, shaped like
/// `KilnStore`: one method per script with typed arguments and replies (the same types as
/// `KilnStore` wherever the meaning is the same), the Lua text beside the method that runs it
/// (`KilnStoreV3+fetch.swift` and so on, the shared prelude in `KilnScriptsV3.swift`), key names
/// from `KeySchemaV3`, and scripts run through `ScriptRunner`, as `KilnStore` runs its own.
///
/// Additive for now: nothing in Kiln uses it yet. Batching is the normal path: `enqueue`,
/// `finish`, `release`, `cancel` and `records` take many jobs per call.
public struct KilnStoreV3: Sendable {
    /// The key builder. Public for tests and tools that must look at raw keys.
    public let keys: KeySchemaV3
    /// The pipelined connection every call goes through.
    public let connection: RedisConnection
    let shas: ScriptCache
    let marker: KilnStore.VersionGate

    /// A store for key prefix `prefix` (checked by the caller with `KeySchema.isValidPrefix`).
    public init(prefix: String, connection: RedisConnection) {
        self.init(keys: KeySchemaV3(prefix: prefix), connection: connection, shas: ScriptCache(), marker: KilnStore.VersionGate())
    }

    private init(keys: KeySchemaV3, connection: RedisConnection, shas: ScriptCache, marker: KilnStore.VersionGate) {
        self.keys = keys
        self.connection = connection
        self.shas = shas
        self.marker = marker
    }

    /// The same store on another connection; script SHAs and the version check are shared.
    public func on(_ connection: RedisConnection) -> KilnStoreV3 {
        KilnStoreV3(keys: keys, connection: connection, shas: shas, marker: marker)
    }

    /// The prefix this store works under.
    public var prefix: String { keys.prefix }

    /// Where the store's Redis is, for messages.
    public var address: String { connection.configuration.address }

    /// The runner on this store's connection and SHA cache.
    var runner: ScriptRunner { ScriptRunner(connection: connection, shas: shas) }

    /// Runs a script and returns its reply; a script error throws `RedisError(.server)`.
    /// `package` for tests that feed scripts arguments no typed method would send.
    package func run(_ script: KilnScriptsV3.Script, keys: [String], args: [String]) async throws -> RedisValue {
        try await runner.run(script, keys: keys, args: args)
    }

    /// Runs `script` once per piece of up to `chunk` items (see `pieces`; an item's first
    /// argument is its job id), all in one pipeline, each call's ARGV being `head` then its
    /// items' arguments; returns one reply element per item, in order. An error reply throws;
    /// so does a reply without one element per item.
    func runBatched(_ script: KilnScriptsV3.Script, keys: [String], head: [String], items: [[String]], chunk: Int = 500) async throws -> [RedisValue] {
        if items.isEmpty { return [] }
        let calls = Self.pieces(items[...], max: chunk) { $0.first ?? "" }.map { piece in
            ScriptRunner.Call(script: script, keys: keys, args: head + piece.joined())
        }
        var out: [RedisValue] = []
        out.reserveCapacity(items.count)
        for reply in try await runner.runPipelined(calls) {
            out += try runner.expectOK(reply, script).array
        }
        guard out.count == items.count else { throw unexpected(script, .array(out)) }
        return out
    }

    /// `items` cut into consecutive pieces of at most `max`, a new piece starting wherever an
    /// id would appear twice in one: the v3 scripts read every record of a call before writing,
    /// so one call must not hold a job twice; pieces run in order, each seeing the last's writes.
    static func pieces<T>(_ items: ArraySlice<T>, max: Int, id: (T) -> String) -> [ArraySlice<T>] {
        var out: [ArraySlice<T>] = []
        var start = items.startIndex
        var seen = Set<String>()
        for i in items.indices {
            if i - start == max || !seen.insert(id(items[i])).inserted {
                out.append(items[start..<i])
                start = i
                seen = [id(items[i])]
            }
        }
        if start < items.endIndex { out.append(items[start...]) }
        return out
    }

    /// A reply of an unexpected shape, as the error callers get.
    func unexpected(_ script: KilnScriptsV3.Script, _ reply: RedisValue) -> KilnError {
        KilnError(.protocolViolation, "unexpected reply to script \(script.name) (v3) from Redis at \(address): \(SafeText.escaped(String(reply.description.prefix(200)))); is another Kiln version writing to prefix '\(SafeText.escaped(prefix))'?")
    }
}
