import KilnRedis
import Synchronization

/// Runs Kiln's Lua scripts by SHA (`EVALSHA`), loading each one (`SCRIPT LOAD`) the first time
/// and again if the server lost it (restart, `SCRIPT FLUSH`).
public final class ScriptRunner: Sendable {
    public let connection: RedisConnection
    private let shas = Mutex<[String: String]>([:])

    public init(connection: RedisConnection) {
        self.connection = connection
    }

    /// The SHA of a script, loading it if this runner has not yet.
    public func sha(_ script: KilnScripts.Script) async throws -> String {
        if let sha = shas.withLock({ $0[script.name] }) { return sha }
        return try await load(script)
    }

    private func load(_ script: KilnScripts.Script) async throws -> String {
        let reply = try await connection.send(["SCRIPT", "LOAD", script.source])
        guard let sha = reply.string else {
            throw RedisError(.unexpectedReply, "Redis at \(connection.configuration.address) did not return a SHA for script \(script.name)")
        }
        shas.withLock { $0[script.name] = sha }
        return sha
    }

    /// The EVALSHA command for one call, for use in a pipeline.
    public func command(_ script: KilnScripts.Script, sha: String, keys: [String], args: [String]) -> [String] {
        ["EVALSHA", sha, String(keys.count)] + keys + args
    }

    /// Runs a script and returns its reply; a script error throws `RedisError(.server)`.
    public func run(_ script: KilnScripts.Script, keys: [String], args: [String]) async throws -> RedisValue {
        let sha = try await sha(script)
        var reply = try await connection.pipeline([command(script, sha: sha, keys: keys, args: args)])[0]
        if case .error(let e) = reply, e.hasPrefix("NOSCRIPT") {
            let sha = try await load(script)
            reply = try await connection.pipeline([command(script, sha: sha, keys: keys, args: args)])[0]
        }
        if case .error(let e) = reply {
            throw Self.scriptError(e, script: script, address: connection.configuration.address)
        }
        return reply
    }

    /// A script's error reply, classified (LOADING and the like are transient).
    static func scriptError(_ text: String, script: KilnScripts.Script, address: String) -> RedisError {
        let e = RedisError.reply(text, command: "script \(script.name)", address: address)
        return RedisError(e.code, "script \(script.name) failed on Redis at \(address): \(text)")
    }

    /// The blocking form of `run`, for code on a thread of its own (the worker's heartbeat), so
    /// it keeps working when every Swift concurrency thread is busy.
    public func runBlocking(_ script: KilnScripts.Script, keys: [String], args: [String]) throws -> RedisValue {
        var sha = shas.withLock { $0[script.name] }
        if sha == nil {
            sha = try connection.pipelineBlocking([["SCRIPT", "LOAD", script.source]])[0].string
            shas.withLock { $0[script.name] = sha }
        }
        var reply = try connection.pipelineBlocking([command(script, sha: sha ?? "", keys: keys, args: args)])[0]
        if case .error(let e) = reply, e.hasPrefix("NOSCRIPT") {
            let fresh = try connection.pipelineBlocking([["SCRIPT", "LOAD", script.source]])[0].string ?? ""
            shas.withLock { $0[script.name] = fresh }
            reply = try connection.pipelineBlocking([command(script, sha: fresh, keys: keys, args: args)])[0]
        }
        if case .error(let e) = reply {
            throw Self.scriptError(e, script: script, address: connection.configuration.address)
        }
        return reply
    }

    /// Runs many calls of scripts in one pipeline (after the `extra` plain commands); replies in
    /// order, errors as `.error` values. Calls the server had no script for are loaded and re-run.
    public func runPipelined(_ calls: [(script: KilnScripts.Script, keys: [String], args: [String])], extra: [[String]] = []) async throws -> [RedisValue] {
        var commands = extra
        for c in calls { commands.append(command(c.script, sha: try await sha(c.script), keys: c.keys, args: c.args)) }
        var replies = try await connection.pipeline(commands)
        for (i, c) in calls.enumerated() {
            if case .error(let e) = replies[extra.count + i], e.hasPrefix("NOSCRIPT") {
                let sha = try await load(c.script)
                replies[extra.count + i] = try await connection.pipeline([command(c.script, sha: sha, keys: c.keys, args: c.args)])[0]
            }
        }
        return replies
    }
}
