import Foundation
import KilnRedis

/// Waiting for a job to be final: block on its done list, then read its record.
extension KilnStore {
    /// Blocks on `connection` until the job is final or `timeout` passes, then reads its record
    /// (in the same pipeline, right after the wait returns: a wake-up costs no extra round trip).
    /// Returns nil if there is no record. The wait leaves the done list as it is
    /// (`BLMOVE done done RIGHT RIGHT`), so every waiter wakes.
    public func waitForFinal(queue: String, id: String, on connection: RedisBlockingConnection, timeout: Duration) async throws -> JobRecord? {
        let doneKey = keys.done(queue, id)
        // Redis takes a fractional timeout in seconds; 0 would mean forever.
        let secs = max(0.001, Double(KilnDuration.milliseconds(timeout)) / 1000)
        let replies = try await connection.pipeline([["BLMOVE", doneKey, doneKey, "RIGHT", "RIGHT", String(format: "%.3f", secs)],
                                                     ["HGETALL", keys.job(queue, id)]],
                                                    blockFor: .milliseconds(Int64(secs * 1000)))
        for (reply, command) in zip(replies, ["BLMOVE", "HGETALL"]) {
            if case .error(let e) = reply { throw RedisError.reply(e, command: command, address: address) }
        }
        return JobRecord(hash: replies[1], queue: queue)
    }
}

/// Waiting for many jobs: every job of a queue that becomes final is announced on the queue's
/// done channel (one message per job in protocol v2, its id), read by `ResultWaiters`.
extension KilnStore {
    /// The channel announcing the jobs of `queue` that become final.
    public func doneChannel(queue: String) -> String { keys.doneChannel(queue) }

    /// The queue and job ids a message on a done channel names (nil for another channel).
    public func parseDone(channel: String, message: String) -> (queue: String, ids: [String])? {
        Self.parseDone(channel: channel, message: message, head: keys.queuePrefix(""))
    }

    /// `parseDone` for both protocol versions (their done channels are named alike): `head` is
    /// the key prefix of the empty queue name, "P:{}:".
    static func parseDone(channel: String, message: String, head: String) -> (queue: String, ids: [String])? {
        guard channel.hasPrefix(String(head.prefix(head.count - 3))), channel.hasSuffix("}:done"),
              let open = channel.firstIndex(of: "{"), let close = channel.lastIndex(of: "}"), open < close else { return nil }
        return (String(channel[channel.index(after: open)..<close]), message.split(separator: " ").map(String.init))
    }
}
