import KilnRedis

/// Counts for one queue.
public struct QueueStats: Sendable, Equatable {
    /// The queue's name.
    public var name: String
    /// Jobs ready to run.
    public var queued: Int
    /// Jobs leased by a worker.
    public var running: Int
    /// Jobs waiting for their retry time.
    public var retrying: Int
    /// Jobs in the dead list.
    public var dead: Int

    /// Counts for one queue.
    public init(name: String, queued: Int, running: Int, retrying: Int, dead: Int) {
        self.name = name
        self.queued = queued
        self.running = running
        self.retrying = retrying
        self.dead = dead
    }

    package var json: String {
        "{\"queue\":\(JSONText.quote(name)),\"queued\":\(queued),\"running\":\(running),\"retrying\":\(retrying),\"dead\":\(dead)}"
    }
}

/// Keys as a whole: for checks that nothing is left behind.
extension KilnStore {
    /// The keys under `prefix` that outlive every job by design, with why.
    package static func keysKeptByDesign(prefix: String) -> [String: String] {
        let keys = KeySchema(prefix: prefix)
        return [keys.queues: "the queue registry: names of queues ever enqueued to, kept by design",
         keys.version: "the version marker: the protocol version of the data under the prefix, kept by design"]
    }

    /// Every key in the database (not only the prefix's), by name (`SCAN`).
    package func allKeyNames() async throws -> Set<String> {
        var names = Set<String>()
        var cursor = "0"
        repeat {
            let reply = try await connection.send(["SCAN", cursor, "COUNT", "1000"]).array
            guard reply.count == 2, let next = reply[0].string else {
                throw KilnError(.protocolViolation, "unexpected SCAN reply from Redis at \(address)")
            }
            cursor = next
            for k in reply[1].array { if let name = k.lossyString { names.insert(name) } }
        } while cursor != "0"
        return names
    }
}
