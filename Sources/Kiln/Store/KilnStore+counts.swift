import KilnRedis

/// Reading queues: names, counts, whether jobs exist, the done channel. Plain commands, no scripts.
extension KilnStore {
    /// Names of every queue ever enqueued to, sorted.
    package func queueNames() async throws -> [String] {
        try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
    }

    /// How many jobs of `queue` are queued (both kinds), running, waiting to retry and dead.
    package func counts(queue: String) async throws -> QueueStats {
        try await counts(queues: [queue])[0]
    }

    /// `counts(queue:)` for many queues, in one pipeline: `LLEN` of both ready lists, `ZCARD` of
    /// `leases`, `later` and `dead`.
    package func counts(queues: [String]) async throws -> [QueueStats] {
        let cmds = queues.flatMap { q in
            [["LLEN", keys.ready(q, .io)], ["LLEN", keys.ready(q, .cpu)], ["ZCARD", keys.leases(q)], ["ZCARD", keys.later(q)], ["ZCARD", keys.dead(q)]]
        }
        let r = try await connection.pipeline(cmds).checked(command: "LLEN/ZCARD", address: address).map { $0.int ?? 0 }
        return queues.enumerated().map { i, q in
            QueueStats(name: q, queued: r[i * 5] + r[i * 5 + 1], running: r[i * 5 + 2], retrying: r[i * 5 + 3], dead: r[i * 5 + 4])
        }
    }

    /// Whether a job exists, for each (queue, id).
    package func exist(_ jobs: [(queue: String, id: String)]) async throws -> [Bool] {
        if jobs.isEmpty { return [] }
        return try await connection.pipeline(jobs.map { ["HEXISTS", keys.jobs($0.queue), $0.id] })
            .checked(command: "HEXISTS", address: address).map { $0.int == 1 }
    }

    /// The channel announcing the jobs of `queue` made final (one message per call: their ids).
    package func doneChannel(queue: String) -> String { keys.doneChannel(queue) }

    /// The queue and job ids a message on a done channel names (nil for another channel).
    package func parseDone(channel: String, message: String) -> (queue: String, ids: [String])? {
        KilnStore.parseDone(channel: channel, message: message, head: keys.queuePrefix(""))
    }

    /// `parseDone` from a store: `head` is
    /// the key prefix of the empty queue name, "P:{}:".
    static func parseDone(channel: String, message: String, head: String) -> (queue: String, ids: [String])? {
        guard channel.hasPrefix(String(head.prefix(head.count - 3))), channel.hasSuffix("}:done"),
              let open = channel.firstIndex(of: "{"), let close = channel.lastIndex(of: "}"), open < close else { return nil }
        return (String(channel[channel.index(after: open)..<close]), message.split(separator: " ").map(String.init))
    }
}
