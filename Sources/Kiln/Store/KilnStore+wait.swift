import Foundation
import KilnRedis

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
