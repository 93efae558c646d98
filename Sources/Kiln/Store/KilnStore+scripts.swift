import KilnRedis

/// Running Kiln's Lua scripts: through `ScriptRunner` (`EVALSHA`, `SCRIPT LOAD` the first time
/// and again after `NOSCRIPT`), with this store's connection and SHA cache.
extension KilnStore {
    /// One call of a script, for a pipeline.
    typealias Call = ScriptRunner.Call

    /// The runner on this store's connection and SHA cache.
    var runner: ScriptRunner { ScriptRunner(connection: connection, shas: shas) }

    /// Runs a script and returns its reply; a script error throws `RedisError(.server)`.
    /// `package` for tests that feed scripts arguments no typed method would send (hostile input).
    package func run(_ script: KilnScripts.Script, keys: [String], args: [String]) async throws -> RedisValue {
        try await runner.run(script, keys: keys, args: args)
    }

    /// The blocking form of `run`, for code on a thread of its own (the worker's heartbeat).
    func runBlocking(_ script: KilnScripts.Script, keys: [String], args: [String]) throws -> RedisValue {
        try runner.runBlocking(script, keys: keys, args: args)
    }

    /// Runs many calls in one pipeline, after the plain commands `before` (see `ScriptRunner`).
    func runPipelined(_ calls: [Call], before: [[String]] = []) async throws -> [RedisValue] {
        try await runner.runPipelined(calls, before: before)
    }
}
