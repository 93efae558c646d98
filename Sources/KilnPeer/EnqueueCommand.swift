import ArgumentParser
import Kiln

/// `enqueue --type T --count N --mode M [--arg X]`: N jobs from this one process, timing only
/// the enqueue loop (after connecting and a PING). Prints `{"count","t_start","t_end"}`.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue COUNT jobs; print {\"count\",\"t_start\",\"t_end\"}.",
        discussion: """
        bulk: one KilnClient.enqueueBatch call (the library pipelines enqueue calls of 500 jobs). \
        concurrent: --in-flight tasks, each awaiting KilnClient.enqueue one job at a time. \
        single: KilnClient.enqueue, each awaited before the next.
        """)

    enum JobType: String, ExpressibleByArgument, CaseIterable { case noop, sleep, cpu }
    enum Mode: String, ExpressibleByArgument, CaseIterable { case bulk, concurrent, single }

    @OptionGroup var peer: PeerOptions
    @Option(help: "noop, sleep or cpu.") var type: JobType
    @Option(help: "Jobs to enqueue.") var count: Int
    @Option(help: "bulk, concurrent or single.") var mode: Mode = .bulk
    @Option(help: "sleep: seconds (default 0.1); cpu: iterations (default 30000000).") var arg: String?
    @Option(name: .customLong("in-flight"), help: "Enqueues in flight in concurrent mode.") var inFlight: Int = 100

    func validate() throws {
        guard (0...10_000_000).contains(count) else { throw ValidationError("--count must be from 0 to 10000000, got \(count)") }
        guard (1...10_000).contains(inFlight) else { throw ValidationError("--in-flight must be from 1 to 10000, got \(inFlight)") }
        _ = try payload()
    }

    /// The jobs' payload as JSON text; the argument is read as the Python drivers read it.
    func payload() throws -> String {
        switch type {
        case .noop:
            return "null"
        case .sleep:
            let s = try arg.map { a -> Double in
                guard let v = Double(a), v.isFinite, (0...3600).contains(v) else { throw ValidationError("--arg for sleep must be seconds from 0 to 3600, got '\(a.prefix(20))'") }
                return v
            } ?? 0.1
            return "{\"s\":\(s)}"
        case .cpu:
            let n = try arg.map { a -> Int in
                guard let v = Double(a), v.isFinite, (0...Double(PeerJobs.maxIterations)).contains(v) else {
                    throw ValidationError("--arg for cpu must be iterations from 0 to \(PeerJobs.maxIterations), got '\(a.prefix(20))'")
                }
                return Int(v)
            } ?? 30_000_000
            return "{\"n\":\(n)}"
        }
    }

    struct Output: Encodable {
        var count: Int
        var mode: String
        var t_start: Double
        var t_end: Double
    }

    func run() async throws {
        let client = try peer.client()
        defer { client.close() }
        try await peer.ping(client)
        let text = try payload()
        // Retries off (the harness's policy); timeout and result TTL are Kiln's defaults.
        let options = JobOptions(queue: peer.queueName, retries: 0)
        let type = self.type.rawValue
        let count = self.count
        let t0 = Probe.now()
        switch mode {
        case .bulk:
            let request = EnqueueRequest(type: type, payload: text, options: options)
            _ = try await client.enqueueBatch(Array(repeating: request, count: count))
        case .concurrent:
            let lanes = max(1, min(inFlight, count))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<lanes {
                    group.addTask {
                        for _ in stride(from: lane, to: count, by: lanes) {
                            _ = try await client.enqueue(type, json: text, options: options)
                        }
                    }
                }
                try await group.waitForAll()
            }
        case .single:
            for _ in 0..<count {
                _ = try await client.enqueue(type, json: text, options: options)
            }
        }
        let t1 = Probe.now()
        try PeerCLI.emit(Output(count: count, mode: mode.rawValue, t_start: t0, t_end: t1))
    }
}
