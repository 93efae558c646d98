import ArgumentParser
import Foundation
import Kiln
import KilnRedis
import Logging

/// `kiln-peer`: Kiln's adapter for the peer benchmark harness (`../shared/peers/ADAPTER.md`).
struct PeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-peer",
        abstract: "Kiln's adapter for the peer benchmark harness: each command prints one JSON line.",
        discussion: """
        Redis, queue and probe directory come from $BENCH_REDIS_URL, $BENCH_QUEUE and \
        $BENCH_PROBE_DIR, as the harness sets them. Logs go to stderr at $KILN_LOG_LEVEL \
        (default warning). Exit codes: 0 success; 1 Redis or runtime error; 2 usage or bad input.
        """,
        subcommands: [InfoCommand.self, EnqueueCommand.self, WorkerCommand.self, PendingCommand.self,
                      RoundtripCommand.self, CPUBaselineCommand.self])
}

/// Runs the command line: one JSON line on stdout, or one `kiln-peer: error:` line on stderr and
/// a non-zero exit.
enum PeerCLI {
    static func main() async {
        do {
            try bootstrapLogging()
            var command = try PeerCommand.parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            fail(error)
        }
    }

    /// Library logs go to stderr (stdout is for the JSON line), at $KILN_LOG_LEVEL or warning: no
    /// per-job lines, the harness's policy for every peer.
    static func bootstrapLogging() throws {
        let text = ProcessInfo.processInfo.environment["KILN_LOG_LEVEL"] ?? "warning"
        guard let level = Logger.Level(rawValue: text) else {
            throw KilnError(.invalidInput, "$KILN_LOG_LEVEL must be trace, debug, info, notice, warning, error or critical, got '\(text.prefix(20))'")
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }

    static func fail(_ error: Error) -> Never {
        switch error {
        case let e as KilnError:
            printError(e.message)
            exit(e.code == .invalidInput || e.code == .tooLarge ? 2 : 1)
        case let e as RedisError:
            printError(e.message)
            exit(1)
        default:
            let code = PeerCommand.exitCode(for: error)
            if code == .success {  // --help
                print(PeerCommand.fullMessage(for: error))
                exit(0)
            }
            let message = PeerCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
            exit(code == .validationFailure || code.rawValue == 64 ? 2 : 1)
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("kiln-peer: error: \(SafeText.escaped(message))\n".utf8))
    }

    /// Prints `value` as one line of JSON: the line the harness reads.
    static func emit<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

/// Where the harness's Redis and queue are: flags, else the harness's environment.
struct PeerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Redis URL. Default: $BENCH_REDIS_URL or redis://127.0.0.1:6379.", valueName: "url"))
    var redis: String?

    @Option(help: "Queue. Default: $BENCH_QUEUE or benchq.")
    var queue: String?

    @Option(help: "Key prefix. Default: kiln.")
    var prefix: String = "kiln"

    var queueName: String { queue ?? ProcessInfo.processInfo.environment["BENCH_QUEUE"] ?? "benchq" }

    func redisConfiguration() throws -> RedisConfiguration {
        let url = redis ?? ProcessInfo.processInfo.environment["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        do { return try RedisConfiguration(url: url) } catch let e as RedisError {
            throw KilnError(.invalidInput, "Redis URL: \(e.message)")
        }
    }

    /// A client that knows the kinds of the peer's job types (so `cpu` jobs go to the pool).
    func client() throws -> KilnClient {
        try KeySchema.checkQueueName(queueName)
        return try KilnClient(options: KilnClientOptions(redis: redisConfiguration(), prefix: prefix, knownKinds: PeerJobs.kinds))
    }

    /// Connects and PINGs, so that the timed part of a command excludes connecting.
    func ping(_ client: KilnClient) async throws {
        _ = try await client.connection.send(["PING"])
    }
}
