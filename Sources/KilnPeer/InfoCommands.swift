import ArgumentParser
import Foundation
import Kiln

/// `info`: name, version, enqueue modes and notes on how Kiln is driven (ADAPTER.md `info`).
struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Print what this peer is and how it is driven.")

    struct Output: Encodable {
        var name = "kiln"
        var version = "dev (scripts v\(KilnScripts.version))"
        var lang: String
        var enqueue_modes = ["bulk", "concurrent", "single"]
        var notes: [String: String]
    }

    static let notes: [String: String] = [
        "bulk": "KilnClient.enqueueBatch with all N jobs in one call; the library pipelines enqueue Lua calls of 500 jobs",
        "concurrent": "100 tasks each awaiting KilnClient.enqueue, all on the client's one pipelined connection",
        "worker": "KilnWorker.Worker in one process: C I/O jobs at once on the async loop; cpu jobs in its pool of P child processes (niceness 10); fetch batch 256, lease 30 s; "
            + (ProcessInfo.processInfo.environment["KILN_PREFETCH"].map { "I/O prefetch \($0) (KILN_PREFETCH: up to C + \($0) jobs held, C running)" } ?? "no I/O prefetch"),
        "roundtrip": RoundtripCommand.mechanism,
        "results": "kept: every job's record with its result and status stays 24 h (Kiln's default TTL); retries off (retries: 0)",
        "guarantees": "at-least-once: a fetched job holds a lease that the worker renews; if the worker dies, the reaper hands the job back to the queue. Sidekiq OSS fetches with BRPOP (a job is lost with its process) and keeps no results",
        "cpu": "the ADAPTER loop in Swift Int (64-bit; i*i cannot overflow below 3e9 iterations), compiled -O",
    ]

    func run() async throws {
        #if compiler(>=6.3)
        let lang = "swift 6.3"
        #elseif compiler(>=6.2)
        let lang = "swift 6.2"
        #elseif compiler(>=6.1)
        let lang = "swift 6.1"
        #else
        let lang = "swift 6.0"
        #endif
        try PeerCLI.emit(Output(lang: lang, notes: Self.notes))
    }
}

/// `cpu-baseline --arg N`: the cpu job's loop once in this process, no queue.
struct CPUBaselineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cpu-baseline", abstract: "Time the cpu loop once, without a queue; print {\"seconds\"}.")

    @Option(help: "Iterations.") var arg: Double = 30_000_000

    func validate() throws {
        guard arg.isFinite, (0...Double(PeerJobs.maxIterations)).contains(arg) else {
            throw ValidationError("--arg must be iterations from 0 to \(PeerJobs.maxIterations), got \(arg)")
        }
    }

    struct Output: Encodable {
        var seconds: Double
        var result: Int
        var iterations: Int
    }

    func run() async throws {
        let n = Int(arg)
        let clock = ContinuousClock()
        let start = clock.now
        let r = PeerJobs.cpuLoop(n)
        let c = (clock.now - start).components
        try PeerCLI.emit(Output(seconds: Double(c.seconds) + Double(c.attoseconds) / 1e18, result: r, iterations: n))
    }
}
