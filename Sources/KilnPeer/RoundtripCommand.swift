import ArgumentParser
import Kiln

/// `roundtrip --count N --warmup W`: sequential round trips through the library's futures:
/// enqueue one echo job, then await its `JobHandle.value()`. Prints `{"latencies_ms",...}`.
struct RoundtripCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roundtrip",
        abstract: "Time W+N sequential enqueue-and-await-result round trips; print the last N in ms.")

    static let mechanism = "KilnClient.enqueue + JobHandle.value(): the waiter shares one subscription to the queue's done channel and reads the record when its id is announced, no polling"

    @OptionGroup var peer: PeerOptions
    @Option(help: "Timed round trips.") var count: Int
    @Option(help: "Untimed round trips first (the first waits up to 60 s for the worker to start).") var warmup: Int = 5

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be from 1 to 1000000, got \(count)") }
        guard (0...1_000_000).contains(warmup) else { throw ValidationError("--warmup must be from 0 to 1000000, got \(warmup)") }
    }

    struct Output: Encodable {
        var latencies_ms: [Double]
        var mechanism: String
    }

    func run() async throws {
        let client = try peer.client()
        defer { client.close() }
        try await peer.ping(client)
        let options = JobOptions(queue: peer.queueName, retries: 0)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let clock = ContinuousClock()
        for i in 0..<(warmup + count) {
            let start = clock.now
            let job = try await client.enqueue("echo", json: String(i), result: Int.self, options: options)
            let value = try await job.value(timeout: i == 0 ? .seconds(60) : .seconds(30))
            let elapsed = clock.now - start
            guard value == i else { throw KilnError(.protocolViolation, "round trip \(i): echo returned \(value)") }
            if i >= warmup {
                let c = elapsed.components
                latencies.append(Double(c.seconds) * 1000 + Double(c.attoseconds) / 1e15)
            }
        }
        try PeerCLI.emit(Output(latencies_ms: latencies, mechanism: Self.mechanism))
    }
}
