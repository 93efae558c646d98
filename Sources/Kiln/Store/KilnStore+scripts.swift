import KilnRedis
import Synchronization

/// Running Kiln's Lua scripts: by SHA (`EVALSHA`), loading each one (`SCRIPT LOAD`) the first
/// time and again if the server lost it (restart, `SCRIPT FLUSH`). The only place that sends
/// `EVALSHA`.
extension KilnStore {
    /// Script SHAs this store (and the stores made from it) loaded, by script name.
    final class ScriptCache: Sendable {
        let shas = Mutex<[String: String]>([:])
    }

    /// One call of a script, for a pipeline.
    struct Call: Sendable {
        let script: KilnScripts.Script
        let keys: [String]
        let args: [String]
    }

    /// The SHA of a script, loading it if this store has not yet.
    func sha(_ script: KilnScripts.Script) async throws -> String {
        if let sha = shas.shas.withLock({ $0[script.name] }) { return sha }
        return try await load(script)
    }

    private func load(_ script: KilnScripts.Script) async throws -> String {
        let reply = try await connection.send(["SCRIPT", "LOAD", script.source])
        guard let sha = reply.string else {
            throw RedisError(.unexpectedReply, "Redis at \(address) did not return a SHA for script \(script.name)")
        }
        shas.shas.withLock { $0[script.name] = sha }
        return sha
    }

    func command(_ call: Call, sha: String) -> [String] {
        ["EVALSHA", sha, String(call.keys.count)] + call.keys + call.args
    }

    /// Runs a script and returns its reply; a script error throws `RedisError(.server)`.
    /// `package` for tests that feed scripts arguments no typed method would send (hostile input).
    package func run(_ script: KilnScripts.Script, keys: [String], args: [String]) async throws -> RedisValue {
        let reply = try await runPipelined([Call(script: script, keys: keys, args: args)])[0]
        if case .error(let e) = reply { throw Self.scriptError(e, script: script, address: address) }
        return reply
    }

    /// A script's error reply, classified (LOADING and the like are transient).
    static func scriptError(_ text: String, script: KilnScripts.Script, address: String) -> RedisError {
        let e = RedisError.reply(text, command: "script \(script.name)", address: address)
        return RedisError(e.code, "script \(script.name) failed on Redis at \(address): \(text)")
    }

    /// The blocking form of `run`, for code on a thread of its own (the worker's heartbeat), so
    /// it keeps working when every Swift concurrency thread is busy.
    func runBlocking(_ script: KilnScripts.Script, keys: [String], args: [String]) throws -> RedisValue {
        let call = Call(script: script, keys: keys, args: args)
        var sha = shas.shas.withLock { $0[script.name] }
        if sha == nil {
            sha = try connection.pipelineBlocking([["SCRIPT", "LOAD", script.source]])[0].string
            shas.shas.withLock { $0[script.name] = sha }
        }
        var reply = try connection.pipelineBlocking([command(call, sha: sha ?? "")])[0]
        if case .error(let e) = reply, e.hasPrefix("NOSCRIPT") {
            let fresh = try connection.pipelineBlocking([["SCRIPT", "LOAD", script.source]])[0].string ?? ""
            shas.shas.withLock { $0[script.name] = fresh }
            reply = try connection.pipelineBlocking([command(call, sha: fresh)])[0]
        }
        if case .error(let e) = reply { throw Self.scriptError(e, script: script, address: address) }
        return reply
    }

    /// Runs many calls in one pipeline, after the plain commands `before`; replies in order
    /// (those of `before` first), error replies as `.error` values. Each call is queued as soon as
    /// it is built, so Redis runs one while the next is being built. Calls the server had no
    /// script for are loaded and run again.
    func runPipelined(_ calls: [Call], before: [[String]] = []) async throws -> [RedisValue] {
        var pending: [PendingReplies] = []
        pending.reserveCapacity(calls.count + 1)
        if !before.isEmpty { pending.append(connection.submit(before)) }
        for c in calls { pending.append(connection.submit([command(c, sha: try await sha(c.script))])) }
        var replies: [RedisValue] = []
        replies.reserveCapacity(calls.count + before.count)
        for p in pending { replies += try await p.value() }
        for (i, c) in calls.enumerated() {
            if case .error(let e) = replies[before.count + i], e.hasPrefix("NOSCRIPT") {
                let sha = try await load(c.script)
                replies[before.count + i] = try await connection.pipeline([command(c, sha: sha)])[0]
            }
        }
        return replies
    }

    /// The reply of a call that must not be an error: a script error reply throws.
    func expectOK(_ reply: RedisValue, _ script: KilnScripts.Script) throws -> RedisValue {
        if case .error(let e) = reply { throw Self.scriptError(e, script: script, address: address) }
        return reply
    }
}
