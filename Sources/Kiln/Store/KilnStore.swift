import KilnRedis

/// The whole Redis contract of Kiln (protocol v3, `docs/protocol.md`) behind one type: one method
/// per script with typed arguments and replies, the Lua text beside the method that runs it
/// (`KilnStore+fetch.swift` and so on, the shared prelude in `KilnScripts.swift`), key names from
/// `KeySchema`, and script loading and `NOSCRIPT` reload in `ScriptRunner`.
///
/// Client, worker, CLI, chaos run and benchmarks talk to Redis only through a store: no other file
/// knows a key name or a script. Batching is the normal path: `enqueue`, `finish`, `release`,
/// `cancel` and `records` take many jobs per call.
package struct KilnStore: Sendable {
    /// The key builder. Public for tests and tools that must look at raw keys.
    package let keys: KeySchema
    /// The pipelined connection every call goes through.
    package let connection: RedisConnection
    let shas: ScriptCache
    let marker: VersionGate

    /// A store for key prefix `prefix` (checked by the caller with `KeySchema.isValidPrefix`).
    package init(prefix: String, connection: RedisConnection) {
        self.init(keys: KeySchema(prefix: prefix), connection: connection, shas: ScriptCache(), marker: VersionGate())
    }

    private init(keys: KeySchema, connection: RedisConnection, shas: ScriptCache, marker: VersionGate) {
        self.keys = keys
        self.connection = connection
        self.shas = shas
        self.marker = marker
    }

    /// The same store on another connection; script SHAs and the version check are shared.
    package func on(_ connection: RedisConnection) -> KilnStore {
        KilnStore(keys: keys, connection: connection, shas: shas, marker: marker)
    }

    /// The prefix this store works under.
    package var prefix: String { keys.prefix }

    /// Where the store's Redis is, for messages.
    package var address: String { connection.configuration.address }

    /// The runner on this store's connection and SHA cache.
    var runner: ScriptRunner { ScriptRunner(connection: connection, shas: shas) }

    /// Runs a script and returns its reply; a script error throws `RedisError(.server)`.
    /// `package` for tests that feed scripts arguments no typed method would send.
    package func run(_ script: KilnScripts.Script, keys: [String], args: [String]) async throws -> RedisValue {
        try await runner.run(script, keys: keys, args: args)
    }

    /// Runs `script` once per piece of up to `chunk` items (see `pieces`; an item's first
    /// argument is its job id), all in one pipeline, each call's ARGV being `head` then its
    /// items' arguments; returns one reply element per item, in order. An error reply throws;
    /// so does a reply without one element per item.
    func runBatched(_ script: KilnScripts.Script, keys: [String], head: [String], items: [[String]], chunk: Int = 500) async throws -> [RedisValue] {
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
    func unexpected(_ script: KilnScripts.Script, _ reply: RedisValue) -> KilnError {
        KilnError(.protocolViolation, "unexpected reply to script \(script.name) from Redis at \(address): \(SafeText.escaped(String(reply.description.prefix(200)))); is another Kiln version writing to prefix '\(SafeText.escaped(prefix))'?")
    }
}
