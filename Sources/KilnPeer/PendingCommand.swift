import ArgumentParser
import Kiln

/// `pending`: jobs of the queue not yet finished (queued + running + waiting to retry), from
/// `KilnClient.queueStats`. Prints `{"pending":k, ...}`.
struct PendingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pending",
        abstract: "Print {\"pending\":k}: jobs queued, running or waiting to retry.")

    @OptionGroup var peer: PeerOptions

    struct Output: Encodable {
        var pending: Int
        var queued: Int
        var running: Int
        var retrying: Int
        var dead: Int
    }

    func run() async throws {
        let client = try peer.client()
        defer { client.close() }
        let name = peer.queueName
        let s = try await client.queueStats().first(where: { $0.name == name }) ?? QueueStats(name: name, queued: 0, running: 0, retrying: 0, dead: 0)
        try PeerCLI.emit(Output(pending: s.queued + s.running + s.retrying, queued: s.queued, running: s.running, retrying: s.retrying, dead: s.dead))
    }
}
