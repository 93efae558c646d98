import ArgumentParser
import Kiln

struct ResultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "result",
        abstract: "Print a job's result value (or, with --json, its whole record).",
        discussion: """
        With several ids, prints one line per id in the order given (the result, or `null` for a \
        job without one; the whole record with --json) and says on stderr why a job has none. \
        --wait waits for all of them over one subscriber connection. Exit code: 5 if a job does \
        not exist, else 3 if one has not finished, else 4 if one ended without success.
        """)

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The job id(s).") var ids: [String] = []
    @Option(help: "The jobs' queue (found automatically if omitted).") var queue: String?
    @Flag(help: "Wait for the job(s) to finish.") var wait = false
    @Option(parsing: .unconditional, help: ArgumentHelp("How long --wait waits.", valueName: "duration"), transform: DurationArgument.parse) var timeout: DurationArgument = .init(.seconds(300))
    @Flag(help: "Print the whole record as one JSON object.") var json = false

    func validate() throws {
        if ids.isEmpty { throw ValidationError("missing job ID") }
    }

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        if ids.count > 1 {
            let targets = ids.map { KilnClient.WaitTarget(id: $0, queue: queue) }
            try RecordPrinter.printOutcomes(try await client.waitAll(targets, timeout: wait ? timeout.value : .zero), json: json)
            return
        }
        let record = wait
            ? try await client.wait(ids[0], queue: queue, timeout: timeout.value)
            : try await client.record(ids[0], queue: queue)
        try RecordPrinter.printOutcome(record, json: json)
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print a job's status word (or, with --json, its whole record).")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The job id.") var id: String
    @Option(help: "The job's queue (found automatically if omitted).") var queue: String?
    @Flag(help: "Print the whole record as one JSON object.") var json = false

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        let record = try await client.record(id, queue: queue)
        print(json ? record.json : SafeText.escaped(record.statusText))
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job and print the status it ends in.",
        discussion: """
        A queued or retry-waiting job is removed and never runs. A running job is stopped by its \
        worker (the async task is cancelled, or the CPU child is killed) and ends cancelled. A \
        finished job is left alone: its status is printed and the exit code is 4.
        """)

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The job id.") var id: String
    @Option(help: "The job's queue (found automatically if omitted).") var queue: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("How long to wait for a running job to stop.", valueName: "duration"), transform: DurationArgument.parse) var timeout: DurationArgument = .init(.seconds(10))

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        let outcome = try await client.cancel(id, queue: queue, wait: timeout.value)
        print(outcome.statusText)
        switch outcome {
        case .cancelled, .stopped(.cancelled): return
        case .stopped(let s):
            throw CLIExit(code: 4, message: "job \(id) finished as \(s.rawValue) before the cancel took effect")
        case .stopping:
            throw CLIExit(code: 3, message: "job \(id) is marked cancelled but its worker has not stopped it within \(timeout)")
        case .alreadyFinished(let s):
            throw CLIExit(code: 4, message: "job \(id) had already finished (\(s)); nothing changed")
        }
    }
}

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract: "Show each queue's queued, running, retrying and dead counts.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "One JSON object per queue, one per line.") var json = false

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        let stats = try await client.queueStats()
        if json {
            for s in stats { print(s.json) }
            return
        }
        let width = max(5, stats.map(\.name.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        func lpad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        print(pad("queue", width) + "  " + ["queued", "running", "retrying", "dead"].map { lpad($0, 8) }.joined(separator: " "))
        for s in stats {
            print(pad(SafeText.escaped(s.name), width) + "  " + [s.queued, s.running, s.retrying, s.dead].map { lpad(String($0), 8) }.joined(separator: " "))
        }
    }
}
