import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The store through the client: a stale write is refused (the retried write is covered by
/// `StoreScriptsTests.retriedFinishRecognisesItsOwnWrite`), and the version marker stops a
/// client, worker or CLI at a prefix of another protocol version.
@Suite struct StoreTests {
    let redis = TestRedis.shared

    func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A job enqueued with `retries` and leased once; returns the store, the job id and its token.
    func leasedJob(_ client: KilnClient, retries: Int = 0) async throws -> (id: String, token: String) {
        let job = try await client.enqueue("echo", json: "1", options: JobOptions(retries: retries))
        let leased = try await client.store.fetch(queue: "default", kind: .io, max: 1, worker: "w1", lease: .seconds(30), now: nowMs())
        #expect(leased.count == 1 && leased[0].id == job.id)
        return (job.id, leased[0].token)
    }

    @Test func aStaleWriteIsStillRefused() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let (id, token) = try await leasedJob(client)
        let now = nowMs()
        let a = AttemptOutcome(id: id, token: token, ending: .succeeded, result: "1", endedAt: now)
        #expect(try await client.store.finish([("default", [a][...])]) .map { try? $0.get() } == [[.left(.succeeded)]])
        // Another token (an older attempt), same moment: stale.
        var older = a
        older.token = String((Int(token) ?? 1) - 1)
        #expect(try await client.store.finish([("default", [older][...])]).map { try? $0.get() } == [[.stale]])
        // The same attempt, another write (another moment, or another outcome): stale.
        var later = a
        later.endedAt = now + 1
        var failed = a
        failed.ending = .failed
        failed.errorType = "error"
        #expect(try await client.store.finish([("default", [later, failed][...])]).map { try? $0.get() } == [[.stale, .stale]])
        #expect(try await client.store.finishOne(queue: "default", later) == .stale)
        #expect(try await client.store.record(queue: "default", id: id)?.result == "1")
    }

    // MARK: version marker

    static let otherVersions = ["2", "4", "banana"]

    func expectedLine(_ prefix: String, _ found: String) -> String {
        if found == "2" {
            return "kiln: error: prefix '\(prefix)' holds protocol v2 data but this kiln speaks v3; drain it with a v2 worker, or use another --prefix / KILN_PREFIX\n"
        }
        let what = found == "4" ? "protocol v4 data" : "data of an unknown protocol version ('\(found)')"
        return "kiln: error: prefix '\(prefix)' holds \(what) but this kiln speaks v3; upgrade kiln, or use another --prefix / KILN_PREFIX\n"
    }

    @Test func writersSetTheMarkerOnce() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        #expect(try await client.queueStats().isEmpty)
        #expect(try await client.connection.send(["EXISTS", client.store.keys.version]).int == 0, "a reader wrote the marker")
        _ = try await client.enqueue("echo", json: "1")
        #expect(try await client.connection.send(["GET", client.store.keys.version]).string == "3")
    }

    @Test func aStartingWorkerSetsTheMarker() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let worker = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        #expect(try await client.connection.send(["GET", client.store.keys.version]).string == String(KilnStore.protocolVersion))
        try await cli.stop(worker)
    }

    @Test(arguments: otherVersions) func clientStopsAtAnotherVersion(found: String) async throws {
        let prefix = TestRedis.uniquePrefix()
        let client = try redis.client(prefix: prefix)
        defer { client.close() }
        try await client.connection.send(["SET", client.store.keys.version, found])
        do {
            _ = try await client.enqueue("echo", json: "1")
            Issue.record("enqueue into a v\(found) prefix was accepted")
        } catch let e as KilnError {
            #expect(e.code == .versionMismatch && "kiln: error: \(e.message)\n" == expectedLine(prefix, found), "\(e)")
        }
        await #expect(throws: KilnError.self) { _ = try await client.queueStats() }
        #expect(try await HostileRecords.keys(redis, prefix) == [client.store.keys.version], "something was written")
    }

    @Test(arguments: otherVersions) func cliAndWorkerStopAtAnotherVersion(found: String) async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        try await client.connection.send(["SET", client.store.keys.version, found])
        for args in [["enqueue", "echo", "1"], ["queues"], ["status", "01JD000000000000000000000X"], ["dead"],
                     ["worker", "--processes", "0"]] {
            let r = try await cli.run(args, timeout: .seconds(30))
            #expect(r.code == 1 && r.stderr == expectedLine(cli.prefix, found), "kiln \(args.joined(separator: " ")): \(r.code) \(r.stderr)")
        }
        #expect(try await HostileRecords.keys(redis, cli.prefix) == [client.store.keys.version], "something was written")
        #expect(try await client.connection.send(["GET", client.store.keys.version]).string == found)
    }
}
