import ArgumentParser
import Kiln

struct DeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead",
        abstract: "List dead-lettered jobs (retries used up), oldest first.")

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only this queue.") var queue: String?
    @Option(parsing: .unconditional, help: "Most jobs listed per queue.") var limit: Int = 1000
    @Flag(help: "One JSON record per line.") var json = false

    func validate() throws {
        try CLI.checkFlag(limit, 1...Int.max, "--limit")
    }

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        for r in try await client.deadJobs(queue: queue, limit: limit) {
            if json {
                print(r.json)
            } else {
                // Records come from any producer: escape control characters (one line each).
                let line = "\(r.id)  \(r.queue)  \(r.type)  attempts=\(r.attempts)  \(r.error.map { "\($0.type): \($0.message)" } ?? "")"
                print(SafeText.escaped(line))
            }
        }
    }
}

struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Run a dead, failed or timed-out job again (attempts reset); or every dead job.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The job id.") var id: String?
    @Option(help: "The job's queue (found automatically if omitted); with --all-dead, only this queue.") var queue: String?
    @Flag(name: .customLong("all-dead"), help: "Retry every dead-lettered job.") var allDead = false

    func validate() throws {
        if allDead == (id != nil) { throw ValidationError("give a job ID or --all-dead (not both)") }
    }

    func run() async throws {
        let client = try connection.client()
        defer { client.close() }
        if let id {
            try await client.retry(id, queue: queue)
            print("queued")
            return
        }
        var n = 0
        var failures: [String] = []
        for r in try await client.deadJobs(queue: queue, limit: 1_000_000) {
            do {
                try await client.retry(r.id, queue: r.queue)
                n += 1
            } catch let e as KilnError where e.code != .redis {
                failures.append("\(r.id): \(e.message)")  // e.g. someone else retried it meanwhile
            }
        }
        print("\(n) job(s) queued again")
        if !failures.isEmpty {
            throw CLIExit(code: 1, message: "\(failures.count) dead job(s) could not be retried, first: \(failures[0])")
        }
    }
}
