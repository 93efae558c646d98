import Foundation
import Kiln
import KilnRedis
import Testing

/// Helpers for `HostileInputTests`: records written the way another producer would (a protocol
/// v3 record put into `Q:jobs` and its id pushed onto a ready list, `RawRecord`), files of raw
/// bytes, and checks on what the CLI printed.
enum HostileRecords {
    static let queue = "default"

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Another producer's queued record in queue `default`: Kiln's defaults (`RawRecord`) with
    /// this type, payload and kind, changed by `change`, its id pushed onto `ready`; one MULTI/EXEC.
    static func put(_ client: KilnClient, id: String, type: String = "echo", payload: String = "null", kind: String = "io",
                    ready: JobKind? = .io, _ change: (inout RawRecord) -> Void = { _ in }) async throws {
        var r = RawRecord()
        r.type = .str(type)
        r.payload = .str(payload)
        r.kind = .str(kind)
        change(&r)
        try await r.put(client.store, queue: queue, id: id, ready: ready)
    }

    /// The expiry score of `id` in `Q:expiry` (members are ids separated by spaces), if it is in one.
    static func expiryScore(_ client: KilnClient, id: String, queue: String = queue) async throws -> Int64? {
        let flat = try await client.connection.send(["ZRANGE", client.store.keys.expiry(queue), "0", "-1", "WITHSCORES"]).array
        for i in stride(from: 0, to: flat.count - 1, by: 2) where (flat[i].string ?? "").split(separator: " ").contains(Substring(id)) {
            return flat[i + 1].string.flatMap { Double($0) }.map { Int64($0) }
        }
        return nil
    }

    /// Whether `id` is on any ready list, or in `Q:leases`, `Q:later` or `Q:dead` of `queue`.
    static func indexes(_ client: KilnClient, id: String, queue: String = queue) async throws -> [String] {
        let k = client.store.keys
        var found: [String] = []
        for kind in [JobKind.io, .cpu] {
            if try await client.connection.send(["LPOS", k.ready(queue, kind), id]).int != nil { found.append("ready:\(kind.rawValue)") }
        }
        for (name, key) in [("leases", k.leases(queue)), ("later", k.later(queue)), ("dead", k.dead(queue))] {
            if !(try await client.connection.send(["ZSCORE", key, id]).isNull) { found.append(name) }
        }
        return found
    }

    /// The job is final with `status` (read through the store, as every client reads it), its id
    /// is in `Q:expiry` with a score within `ttlMs` (+ the second the index rounds up to) from
    /// now, it holds no lease and is on no other index (`Q:dead` only if `dead`), and a waiter
    /// wakes at once with that status.
    static func expectFinalAndExpiring(_ client: KilnClient, id: String, status: String, ttlMs: Int64 = 86_400_000,
                                       sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let now = nowMs()
        let rec = try await client.store.record(queue: queue, id: id)
        #expect(rec?.statusText == status && rec?.isFinal == true, "\(id): \(rec?.json ?? "no record")", sourceLocation: sourceLocation)
        let score = try await expiryScore(client, id: id)
        #expect(score != nil, "\(id) is not in the expiry index", sourceLocation: sourceLocation)
        if let score {
            #expect(score > now && score <= now + ttlMs + 1000, "\(id): expires at \(score), now \(now), ttl \(ttlMs)",
                    sourceLocation: sourceLocation)
        }
        let on = try await indexes(client, id: id)
        #expect(on == (status == "dead" ? ["dead"] : []), "\(id) is still on \(on)", sourceLocation: sourceLocation)
        let started = ContinuousClock.now
        let woken = try await client.wait(id, queue: queue, timeout: .seconds(5))
        #expect(woken.statusText == status, "\(id): a waiter got \(woken.statusText)", sourceLocation: sourceLocation)
        #expect(ContinuousClock.now - started < .seconds(2), "\(id): the waiter was not woken at once", sourceLocation: sourceLocation)
    }

    /// A temp file holding exactly `bytes`.
    static func file(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "kiln-hostile-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw TestFailure("cannot write \(path)") }
        return path
    }

    /// Parses every line of `stdout` as one JSON object (fails the test on the first that is not).
    static func parseEachLine(_ stdout: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        var out: [[String: Any]] = []
        for line in stdout.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestFailure("not a JSON object line: \(String(line).debugDescription)")
            }
            out.append(obj)
        }
        return out
    }

    /// stderr is exactly one `kiln: error:` line without control characters.
    static func expectOneLine(_ r: KilnCLI.Result, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty && r.stderr.hasPrefix("kiln: error: "),
                "not one error line: \(r.stderr.debugDescription)", sourceLocation: sourceLocation)
        #expect(!r.stderr.unicodeScalars.dropLast().contains { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) },
                "control characters in \(r.stderr.debugDescription)", sourceLocation: sourceLocation)
    }

    /// Runs the kiln binary with the CLI's environment plus `environment`.
    static func run(_ cli: KilnCLI, _ args: [String], environment: [String: String]) async throws -> KilnCLI.Result {
        var env = cli.environment
        for (k, v) in environment { env[k] = v }
        let p = try ChildProcess([KilnBinary.path] + args, environment: env)
        let code = try await p.wait(timeout: .seconds(30))
        return KilnCLI.Result(code: code, stdout: p.stdout, stderr: p.stderr)
    }

    /// Runs a shell command with `$KILN` set to the binary (for arguments that are not UTF-8).
    static func shell(_ cli: KilnCLI, _ script: String) async throws -> KilnCLI.Result {
        var env = cli.environment
        env["KILN"] = KilnBinary.path
        let p = try ChildProcess(["/bin/sh", "-c", script], environment: env)
        let code = try await p.wait(timeout: .seconds(30))
        return KilnCLI.Result(code: code, stdout: p.stdout, stderr: p.stderr)
    }

    /// Keys under a prefix.
    static func keys(_ redis: TestRedis, _ prefix: String) async throws -> [String] {
        let client = try redis.client(prefix: prefix)
        defer { client.close() }
        return try await client.connection.send(["KEYS", "\(prefix):*"]).array.compactMap(\.string)
    }

    /// How many clients of `redis` are subscribed to the done channel of `queue` under `prefix`:
    /// each waiting client (process) holds one such subscription while it waits.
    static func waitingClients(_ redis: TestRedis, prefix: String, queue: String = "default") async throws -> Int {
        let client = try redis.client(prefix: prefix)
        defer { client.close() }
        let channel = client.store.doneChannel(queue: queue)
        return try await client.connection.send(["PUBSUB", "NUMSUB", channel]).array.last?.int ?? 0
    }
}
