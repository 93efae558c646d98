import ArgumentParser
import Foundation
import Kiln

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue a job and print its id (or, with --wait, its result).",
        discussion: """
        Bulk: --batch FILE (or - for stdin) reads JSON lines {"type":…, "payload":…, "queue"?:…, \
        "timeout"?:…, "retries"?:…, "result_ttl"?:…, "kind"?:…, "id"?:…} and prints one id per line, \
        in input order. Every line is checked before anything is written. With --wait, waits for \
        every job of the batch (over one subscriber connection) and prints one result per line in \
        input order instead (the whole record with --json); exit 4 if any ended without success, \
        3 if any had not finished by --wait-timeout.
        """)

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The job type (handler name), e.g. echo, sleep, cpu.spin.")
    var type: String?

    @Argument(help: "The payload as JSON; @FILE reads it from a file, - from stdin. Default: null.")
    var payload: String?

    @Option(help: "Queue to put the job on.") var queue: String = "default"
    @Option(parsing: .unconditional, help: ArgumentHelp("How long one attempt may run.", valueName: "duration"), transform: DurationArgument.parse) var timeout: DurationArgument = .init(.seconds(300))
    @Option(parsing: .unconditional, help: "How many times a failed attempt is retried.") var retries: Int = 3
    @Option(name: .customLong("result-ttl"), parsing: .unconditional, help: ArgumentHelp("How long the result is kept.", valueName: "duration"), transform: DurationArgument.parse) var resultTTL: DurationArgument = .init(.seconds(86_400))
    @Flag(help: "Run the job in the worker's process pool.") var cpu = false
    @Flag(help: "Run the job on the worker's async loop.") var io = false
    @Option(help: ArgumentHelp("Use this job id instead of a new one; enqueuing an id that exists is refused (exit 2).", valueName: "id")) var id: String?
    @Flag(help: "Wait for the job and print its result.") var wait = false
    @Option(name: .customLong("wait-timeout"), parsing: .unconditional, help: ArgumentHelp("How long --wait waits.", valueName: "duration"), transform: DurationArgument.parse) var waitTimeout: DurationArgument = .init(.seconds(300))
    @Flag(help: "Print the whole record as one JSON object.") var json = false
    @Option(help: ArgumentHelp("Read JSON lines of jobs from FILE, or - for stdin.", valueName: "file")) var batch: String?
    @Option(name: .customLong("max-payload"), parsing: .unconditional, help: "Largest payload accepted, in bytes (also $KILN_MAX_PAYLOAD).") var maxPayload: Int?

    func validate() throws {
        if cpu && io { throw ValidationError("--cpu and --io cannot be used together") }
        if batch != nil && (type != nil || payload != nil) { throw ValidationError("--batch takes no TYPE or PAYLOAD arguments") }
        if batch == nil && type == nil { throw ValidationError("missing job TYPE (or --batch FILE)") }
        try CLI.checkFlag(retries, 0...JobLimits.maxRetries, "--retries")
        if let maxPayload { try CLI.checkFlag(maxPayload, Self.payloadRange, "--max-payload") }
    }

    /// Payload limits accepted by --max-payload and $KILN_MAX_PAYLOAD (1 byte to 512 MiB, Redis's
    /// largest string).
    static let payloadRange = 1...(512 << 20)

    func payloadLimit() throws -> Int {
        try maxPayload ?? CLI.environmentNumber("KILN_MAX_PAYLOAD", flag: "--max-payload", in: Self.payloadRange) ?? (1 << 20)
    }

    func run() async throws {
        let limit = try payloadLimit()
        let client = try connection.client(maxPayloadBytes: limit)
        defer { client.close() }
        if let batch {
            let requests = try BatchReader.read(batch, defaults: options(), limit: limit)
            let ids = try await client.enqueueBatch(requests)
            guard wait else {
                for id in ids { print(id) }
                return
            }
            let targets = zip(ids, requests).map { KilnClient.WaitTarget(id: $0, queue: $1.options.queue) }
            try RecordPrinter.printOutcomes(try await client.waitAll(targets, timeout: waitTimeout.value), json: json)
            return
        }
        let handle = try await client.enqueue(type!, json: try payloadText(), options: options())
        guard wait else {
            if json { print(try await handle.record().json) } else { print(handle.id) }
            return
        }
        let record = try await client.wait(handle.id, queue: handle.queue, timeout: waitTimeout.value)
        try RecordPrinter.printOutcome(record, json: json)
    }

    /// The payload as given: bytes that are not UTF-8 are refused (never replaced), and a byte
    /// order mark at the start of a file or stdin is dropped (it is not JSON).
    func payloadText() throws -> String {
        guard let payload else { return "null" }
        if payload == "-" {
            return SafeText.droppingBOM(try SafeText.utf8(FileHandle.standardInput.readDataToEndOfFile(), what: "the payload on stdin"))
        }
        if payload.hasPrefix("@") {
            let path = String(payload.dropFirst())
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KilnError(.invalidInput, "cannot read payload file '\(path)'")
            }
            return SafeText.droppingBOM(try SafeText.utf8(data, what: "payload file '\(path)'"))
        }
        return SafeText.droppingBOM(payload)
    }

    func options() -> JobOptions {
        JobOptions(queue: queue, timeout: timeout.value, retries: retries, resultTTL: resultTTL.value,
                   kind: cpu ? .cpu : (io ? .io : nil), id: id)
    }
}

/// Prints a finished job the way `--wait` and `result` do, and picks the exit code.
enum RecordPrinter {
    /// One line per job, in order: the result (`null` for none) or, with `json`, the record
    /// (`null` for a missing job); a line on stderr for each job without a result. Then the exit
    /// code: 5 if a job is missing, else 3 if one has not finished, else 4 if one ended
    /// without success.
    static func printOutcomes(_ outcomes: [KilnClient.WaitOutcome], json: Bool) throws {
        var missing = 0, unfinished = 0, unsuccessful = 0
        var out = ""
        for o in outcomes {
            switch o {
            case .missing(let id):
                missing += 1
                out += "null\n"
                CLI.printError("no job with id \(id) (never enqueued, or its record expired)")
            case .unfinished(let r):
                unfinished += 1
                out += (json ? r.json : "null") + "\n"
                CLI.printError("job \(r.id) has not finished (status: \(r.statusText))")
            case .final(let r):
                if r.status == .succeeded {
                    out += (json ? r.json : SafeText.escaped(r.result ?? "null")) + "\n"
                } else {
                    unsuccessful += 1
                    out += (json ? r.json : "null") + "\n"
                    CLI.printError("job \(r.id) ended \(r.statusText)\(r.error.map { ": \($0.message)" } ?? "")")
                }
            }
        }
        print(out, terminator: "")
        if missing > 0 { throw CLIExit(code: 5, message: "\(missing) of \(outcomes.count) jobs do not exist") }
        if unfinished > 0 { throw CLIExit(code: 3, message: "\(unfinished) of \(outcomes.count) jobs have not finished") }
        if unsuccessful > 0 { throw CLIExit(code: 4, message: "\(unsuccessful) of \(outcomes.count) jobs ended without success") }
    }

    static func printOutcome(_ record: JobRecord, json: Bool) throws {
        if json { print(record.json) }
        if record.status == .succeeded {
            if !json { print(SafeText.escaped(record.result ?? "null")) }
            return
        }
        if !record.isFinal {
            throw CLIExit(code: 3, message: json ? nil : "job \(record.id) has not finished (status: \(record.statusText))")
        }
        let why = record.error.map { ": \($0.message)" } ?? ""
        throw CLIExit(code: 4, message: "job \(record.id) ended \(record.statusText)\(why)")
    }
}
