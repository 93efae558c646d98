import Foundation
import Kiln
import KilnRedis
import Testing

/// `ResultWaiters` against a real redis-server: records are fields of one hash here ("queued" or
/// "done:..."), and the "finisher" is the test, which writes a field and publishes the ids.
@Suite struct ResultWaitersTests {
    struct Fixture {
        let redis: TestRedis
        let conn: RedisConnection
        let hash: String
        let channel: String
        let waiters: ResultWaiters<String, String>

        init(redis: TestRedis = .shared) {
            self.redis = redis
            let prefix = TestRedis.uniquePrefix()
            let conn = RedisConnection(configuration: redis.configuration)
            let hash = "\(prefix):{q}:recs"
            let channel = "\(prefix):{q}:done"
            self.conn = conn
            self.hash = hash
            self.channel = channel
            waiters = ResultWaiters(configuration: redis.configuration, source: .init(
                channel: { _ in channel },
                keys: { _, message in message.split(separator: " ").map(String.init) },
                read: { ids in try await conn.send(["HMGET", hash] + ids).array.map(\.string) },
                isFinal: { $0.hasPrefix("done") }))
        }

        func put(_ ids: [String], _ value: String, publish: Bool) async throws {
            var cmds: [[String]] = []
            for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                cmds.append(["HSET", hash] + chunk.flatMap { [$0, value] })
                if publish { cmds.append(["PUBLISH", channel, chunk.joined(separator: " ")]) }
            }
            _ = try await conn.pipeline(cmds)
        }

        func subscribed() async throws -> Bool {
            try await conn.send(["PUBSUB", "NUMSUB", channel]).array.last?.int ?? 0 >= 1
        }

        func connectedClients() async throws -> Int {
            let info = try await conn.send(["INFO", "clients"]).string ?? ""
            let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_clients:") }
            return Int(line?.split(separator: ":").last ?? "") ?? -1
        }
    }

    @Test func tenThousandJobsOverOneSubscriberConnection() async throws {
        let own = try TestRedis()  // its own server: other tests' connections would blur the count
        defer { own.stop() }
        let f = Fixture(redis: own)
        defer { f.waiters.close(); f.conn.close() }
        let ids = (0..<10_000).map { "job-\($0)" }
        let singles = (0..<100).map { "single-\($0)" }
        try await f.put(ids + singles, "queued", publish: false)
        let before = try await f.connectedClients()
        let deadline = ContinuousClock.now + .seconds(60)
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask { try await f.waiters.wait(for: ids, until: deadline).records.values.filter { $0.hasPrefix("done") }.count }
            for id in singles {
                group.addTask { try await f.waiters.wait(for: [id], until: deadline).records[id] == "done:ok" ? 1 : 0 }
            }
            try await eventually("all 10,100 keys registered and subscribed") {
                let subscribed = try await f.subscribed()
                return f.waiters.waitingKeys == 10_100 && subscribed
            }
            // However many jobs are waited on: one subscriber connection more than before.
            let during = try await f.connectedClients()
            #expect(during - before == 1, "connections: \(before) before, \(during) while waiting")
            try await f.put(ids + singles, "done:ok", publish: true)
            var total = 0
            for try await n in group { total += n }
            #expect(total == 10_100)
        }
        #expect(f.waiters.waitingKeys == 0)
    }

    @Test func resultFinalBeforeTheWaitIsSeen() async throws {
        let f = Fixture()
        defer { f.waiters.close(); f.conn.close() }
        try await f.put(["a"], "done:early", publish: false)  // no message ever comes
        let out = try await f.waiters.wait(for: ["a"], until: .now + .seconds(20))
        #expect(out.records["a"] == "done:early")
        #expect(out.pending.isEmpty)
    }

    @Test func messagesLostToABrokenConnectionAreMadeUpByARead() async throws {
        let own = try TestRedis()  // CLIENT KILL below must not hit other tests' subscribers
        defer { own.stop() }
        let f = Fixture(redis: own)
        defer { f.waiters.close(); f.conn.close() }
        try await f.put(["b"], "queued", publish: false)
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await f.waiters.wait(for: ["b"], until: .now + .seconds(30)).records["b"] }
            try await eventually("subscribed") { try await f.subscribed() }
            _ = try await f.conn.send(["CLIENT", "KILL", "TYPE", "pubsub"])
            try await f.put(["b"], "done:while-away", publish: false)
            #expect(try await group.next()! == "done:while-away")
        }
    }

    @Test func deadlineReportsPendingAndMissing() async throws {
        let f = Fixture()
        defer { f.waiters.close(); f.conn.close() }
        try await f.put(["slow", "other"], "queued", publish: false)
        // Subscribed first (through another wait), so the reads below happen well before the deadline.
        let other = Task { try await f.waiters.wait(for: ["other"], until: .now + .seconds(60)) }
        defer { other.cancel() }
        try await eventually("subscribed") { try await f.subscribed() }
        let started = ContinuousClock.now
        let out = try await f.waiters.wait(for: ["slow", "nope"], until: .now + .seconds(3))
        #expect(out.pending == ["slow"])
        #expect(out.missing == ["nope"])
        #expect(out.records["slow"] == "queued")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(f.waiters.waitingKeys == 1)  // "other" only
    }

    @Test func cancellingAWaitRemovesIt() async throws {
        let f = Fixture()
        defer { f.waiters.close(); f.conn.close() }
        try await f.put(["c"], "queued", publish: false)
        let task = Task { try await f.waiters.wait(for: ["c"], until: .now + .seconds(60)) }
        try await eventually("registered") { f.waiters.waitingKeys == 1 }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(f.waiters.waitingKeys == 0)
    }
}
