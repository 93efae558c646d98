import KilnRedis

/// Reading: job records, queue names and counts, the dead-letter list. Plain commands, no scripts.
extension KilnStore {
    /// Names of every queue ever enqueued to, sorted.
    public func queueNames() async throws -> [String] {
        try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
    }

    /// The record of `id` in `queue`, or nil if there is none.
    public func record(queue: String, id: String) async throws -> JobRecord? {
        try await records(queue: queue, ids: [id])[0]
    }

    /// The first of `queues` (in order) that holds a record of `id`, with the record.
    public func find(id: String, in queues: [String]) async throws -> (queue: String, record: JobRecord)? {
        // An error reply (LOADING after a restart) is not "no such job": it throws.
        let replies = try await connection.pipeline(queues.map { ["HGETALL", keys.job($0, id)] })
            .checked(command: "HGETALL", address: address)
        for (q, reply) in zip(queues, replies) {
            if let rec = JobRecord(hash: reply, queue: q) { return (q, rec) }
        }
        return nil
    }

    /// The records of `ids` in `queue`, in order (nil where there is none), read 1000 at a time.
    public func records(queue: String, ids: [String]) async throws -> [JobRecord?] {
        try await chunked(ids) { chunk in
            try await connection.pipeline(chunk.map { ["HGETALL", keys.job(queue, $0)] })
                .checked(command: "HGETALL", address: address).map { JobRecord(hash: $0, queue: queue) }
        }
    }

    /// The status word of each of `ids` in `queue` (nil where there is no record): cheaper than
    /// whole records when polling many jobs.
    public func statuses(queue: String, ids: [String]) async throws -> [String?] {
        try await chunked(ids) { chunk in
            try await connection.pipeline(chunk.map { ["HGET", keys.job(queue, $0), "status"] })
                .checked(command: "HGET", address: address).map(\.string)
        }
    }

    /// How many jobs of `queue` are queued (both kinds), running, waiting to retry and dead.
    public func counts(queue: String) async throws -> QueueStats {
        try await counts(queues: [queue])[0]
    }

    /// `counts(queue:)` for many queues, in one pipeline.
    public func counts(queues: [String]) async throws -> [QueueStats] {
        var cmds: [[String]] = []
        for q in queues {
            cmds.append(["LLEN", keys.pending(q, .io)])
            cmds.append(["LLEN", keys.pending(q, .cpu)])
            cmds.append(["ZCARD", keys.running(q)])
            cmds.append(["ZCARD", keys.scheduled(q)])
            cmds.append(["ZCARD", keys.dead(q)])
        }
        let r = try await connection.pipeline(cmds).checked(command: "LLEN/ZCARD", address: address)
        return queues.enumerated().map { i, q in
            let b = i * 5
            return QueueStats(name: q, queued: (r[b].int ?? 0) + (r[b + 1].int ?? 0), running: r[b + 2].int ?? 0,
                              retrying: r[b + 3].int ?? 0, dead: r[b + 4].int ?? 0)
        }
    }

    /// The dead-lettered jobs of `queue`, oldest first, at most `limit` (expired records skipped).
    public func deadJobs(queue: String, limit: Int) async throws -> [JobRecord] {
        let ids = try await connection.send(["ZRANGE", keys.dead(queue), "0", String(max(0, limit - 1))]).array.compactMap(\.string)
        return try await records(queue: queue, ids: ids).compactMap { $0 }
    }

    /// Runs `body` on pieces of up to 1000 of `ids` and joins the results.
    private func chunked<T>(_ ids: [String], _ body: (ArraySlice<String>) async throws -> [T]) async throws -> [T] {
        var out: [T] = []
        out.reserveCapacity(ids.count)
        for start in stride(from: 0, to: ids.count, by: 1000) {
            out += try await body(ids[start..<min(ids.count, start + 1000)])
        }
        return out
    }
}

/// Counts for one queue.
public struct QueueStats: Sendable, Equatable {
    public var name: String
    public var queued: Int
    public var running: Int
    public var retrying: Int
    public var dead: Int

    public init(name: String, queued: Int, running: Int, retrying: Int, dead: Int) {
        self.name = name
        self.queued = queued
        self.running = running
        self.retrying = retrying
        self.dead = dead
    }

    public var json: String {
        "{\"queue\":\(JSONText.quote(name)),\"queued\":\(queued),\"running\":\(running),\"retrying\":\(retrying),\"dead\":\(dead)}"
    }
}

/// Keys as a whole: for checks that nothing is left behind.
extension KilnStore {
    /// The keys under `prefix` that outlive every job by design, with why.
    public static func keysKeptByDesign(prefix: String) -> [String: String] {
        let keys = KeySchema(prefix: prefix)
        return [keys.queues: "the queue registry: names of queues ever enqueued to, kept by design",
         keys.version: "the version marker: the protocol version of the data under the prefix, kept by design"]
    }

    /// Every key in the database (not only the prefix's), by name (`SCAN`).
    public func allKeyNames() async throws -> Set<String> {
        var names = Set<String>()
        var cursor = "0"
        repeat {
            let reply = try await connection.send(["SCAN", cursor, "COUNT", "1000"]).array
            guard reply.count == 2, let next = reply[0].string else {
                throw KilnError(.protocolViolation, "unexpected SCAN reply from Redis at \(address)")
            }
            cursor = next
            for k in reply[1].array { if let name = k.string { names.insert(name) } }
        } while cursor != "0"
        return names
    }
}
