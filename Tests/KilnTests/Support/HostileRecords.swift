import Foundation
import Kiln
import KilnRedis
import Testing

/// Helpers for `HostileInputTests`: records written the way another producer would (the
/// documented `MULTI`/`HSET`/`LPUSH` form), files of raw bytes, and checks on what the CLI printed.
enum HostileRecords {
    /// Writes a queued record in queue `default` with Kiln's defaults, `overrides` replacing
    /// fields, and pushes its id, in one MULTI/EXEC (docs/protocol.md, "Without scripts").
    static func put(_ client: KilnClient, id: String, type: String, payload: String, kind: String = "io",
                    overrides: [String: String]) async throws {
        let k = client.store.keys
        var fields: [String: String] = [
            "id": id, "type": type, "queue": "default", "kind": kind, "payload": payload, "status": "queued",
            "attempts": "0", "max_attempts": "1", "timeout_ms": "10000", "result_ttl_ms": "86400000",
            "enqueued_at": String(Int64(Date().timeIntervalSince1970 * 1000)), "token": "0",
        ]
        for (f, v) in overrides { fields[f] = v }
        let hset = ["HSET", k.job("default", id)] + fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
        let replies = try await client.connection.pipeline([["SADD", k.queues, "default"], ["MULTI"], hset,
                                                            ["LPUSH", k.pending("default", .io), id], ["EXEC"]])
        for r in replies { if case .error(let e) = r { throw TestFailure("writing \(id): \(e)") } }
    }

    /// The record is final with `status`, expires within the default day, its done list holds
    /// `status` (so waiters wake), and it holds no lease.
    static func expectFinalAndExpiring(_ client: KilnClient, id: String, status: String,
                                       sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let k = client.store.keys
        let pttl = try await client.connection.send(["PTTL", k.job("default", id)]).int ?? -3
        #expect(pttl > 1000 && pttl <= 86_400_000, "\(id): PTTL \(pttl)", sourceLocation: sourceLocation)
        let done = try await client.connection.send(["LRANGE", k.done("default", id), "0", "-1"]).array.compactMap(\.string)
        #expect(done == [status], "\(id): done list \(done)", sourceLocation: sourceLocation)
        #expect(try await client.connection.send(["PTTL", k.done("default", id)]).int ?? -3 > 1000, sourceLocation: sourceLocation)
        #expect(try await client.connection.send(["ZSCORE", k.running("default"), id]).isNull, "\(id) still leased",
                sourceLocation: sourceLocation)
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
