import KilnRedis
import Synchronization

/// One Lua script as a store runs it: a name (for errors, and the key of its SHA in the cache) and
/// its full text, prelude included. `KilnScripts.Script` is the one kind.
package protocol StoreScript: Sendable {
    var name: String { get }
    var source: String { get }
}


/// Script SHAs a store (and the stores made from it) loaded, by script name. One cache holds the
/// scripts of one protocol version: names are unique within a version only.
final class ScriptCache: Sendable {
    let shas = Mutex<[String: String]>([:])
}

/// Running a store's Lua scripts: by SHA (`EVALSHA`), loading each one (`SCRIPT LOAD`) the first
/// time and again if the server lost it (restart, `SCRIPT FLUSH`). The only place that sends
/// `EVALSHA`; `KilnStore` runs their scripts through it.
struct ScriptRunner: Sendable {
    let connection: RedisConnection
    let shas: ScriptCache

    var address: String { connection.configuration.address }

    /// One call of a script, for a pipeline.
    struct Call: Sendable {
        let script: any StoreScript
        let keys: [String]
        let args: [String]
    }

    /// The SHA of a script, loading it if this store has not yet.
    func sha(_ script: any StoreScript) async throws -> String {
        if let sha = shas.shas.withLock({ $0[script.name] }) { return sha }
        return try await load(script)
    }

    private func load(_ script: any StoreScript) async throws -> String {
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
    func run(_ script: any StoreScript, keys: [String], args: [String]) async throws -> RedisValue {
        try expectOK(try await runPipelined([Call(script: script, keys: keys, args: args)])[0], script)
    }

    /// A script's error reply, classified (LOADING and the like are transient).
    static func scriptError(_ text: String, script: any StoreScript, address: String) -> RedisError {
        let e = RedisError.reply(text, command: "script \(script.name)", address: address)
        return RedisError(e.code, "script \(script.name) failed on Redis at \(address): \(text)")
    }

    /// The blocking form of `run`, for code on a thread of its own (the worker's heartbeat), so
    /// it keeps working when every Swift concurrency thread is busy.
    func runBlocking(_ script: any StoreScript, keys: [String], args: [String]) throws -> RedisValue {
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
        return try expectOK(reply, script)
    }

    /// Runs many calls in one pipeline, after the plain commands `before`; replies in order
    /// (those of `before` first), error replies as `.error` values. Each call is queued as soon as
    /// it is built, so Redis runs one while the next is being built. Calls the server had no
    /// script for are loaded and run again.
    func runPipelined(_ calls: [Call], before: [[String]] = []) async throws -> [RedisValue] {
        try await runPipelined(calls.count, calls, before: before)
    }

    /// `runPipelined` over a sequence that builds each call as it is iterated (a `lazy.map`):
    /// Redis then runs the first call while the client still builds the later ones.
    func runPipelined<S: Sequence<Call>>(_ count: Int, _ calls: S, before: [[String]] = []) async throws -> [RedisValue] {
        var pending: [PendingReplies] = []
        pending.reserveCapacity(count + 1)
        if !before.isEmpty { pending.append(connection.submit(before)) }
        var sent: [Call] = []
        sent.reserveCapacity(count)
        for c in calls {
            pending.append(connection.submit([command(c, sha: try await sha(c.script))]))
            sent.append(c)
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(sent.count + before.count)
        for p in pending { replies += try await p.value() }
        for (i, c) in sent.enumerated() {
            if case .error(let e) = replies[before.count + i], e.hasPrefix("NOSCRIPT") {
                let sha = try await load(c.script)
                replies[before.count + i] = try await connection.pipeline([command(c, sha: sha)])[0]
            }
        }
        return replies
    }

    /// Throws the first transient error reply among `replies` (`LOADING`, `READONLY`), so that
    /// the caller's retry covers it; other error replies are left to the caller.
    func throwIfTransient(_ replies: [RedisValue], command: String) throws {
        for r in replies {
            if case .error(let e) = r, RedisError.reply(e, command: "", address: "").isTransient {
                throw RedisError.reply(e, command: command, address: address)
            }
        }
    }

    /// The reply of a call that must not be an error: a script error reply throws.
    func expectOK(_ reply: RedisValue, _ script: any StoreScript) throws -> RedisValue {
        if case .error(let e) = reply { throw Self.scriptError(e, script: script, address: address) }
        return reply
    }
}
