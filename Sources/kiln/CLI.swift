import ArgumentParser
import Foundation
import Kiln
import KilnRedis

/// `kiln`: enqueue jobs, wait for results, cancel, and run workers.
struct KilnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "A distributed task queue on Redis: enqueue jobs, wait for results, cancel, run workers.",
        discussion: """
        Exit codes: 0 success; 1 Redis or runtime error; 2 usage or bad input; 3 waited and the job \
        has not finished; 4 the job finished without success (or, for cancel, had already finished); \
        5 no such job.
        """,
        subcommands: [EnqueueCommand.self, ResultCommand.self, StatusCommand.self, CancelCommand.self,
                      WorkerCommand.self, QueuesCommand.self, DeadCommand.self, RetryCommand.self, DemoCommand.self, ScriptCommand.self])
}

/// Runs the command line with Kiln's exit codes and one-line errors.
enum CLI {
    static func main() async {
        do {
            try checkArgumentsAreUTF8()
            var command = try KilnCommand.parseAsRoot()
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

    static func fail(_ error: Error) -> Never {
        switch error {
        case let e as CLIExit:
            if let m = e.message { printError(m) }
            exit(e.code)
        case let e as KilnError:
            printError(e.message)
            exit(code(for: e))
        case let e as RedisError:
            printError(e.message)
            exit(1)
        default:
            let code = KilnCommand.exitCode(for: error)
            if code == .success {
                // --help / --version
                print(KilnCommand.fullMessage(for: error))
                exit(0)
            }
            let message = KilnCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
            // ArgumentParser says 64 for usage errors; Kiln's contract says 2.
            exit(code == .validationFailure ? 2 : (code.rawValue == 0 ? 1 : (code.rawValue == 64 ? 2 : code.rawValue)))
        }
    }

    static func code(for e: KilnError) -> Int32 {
        switch e.code {
        case .invalidInput, .tooLarge, .duplicateJob: return 2
        case .waitTimedOut: return 3
        case .jobUnsuccessful: return 4
        case .noSuchJob: return 5
        default: return 1
        }
    }

    /// Prints one line: control characters in the message (which may echo user input or
    /// records written by others) are escaped, so it can neither inject terminal sequences nor
    /// span several lines.
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("kiln: error: \(SafeText.escaped(message))\n".utf8))
    }

    /// Arguments come in as bytes; Swift would quietly replace bytes that are not UTF-8 with
    /// U+FFFD, changing a job type or payload. Refuse them instead (exit 2).
    static func checkArgumentsAreUTF8() throws {
        for i in 1..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[i] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(arg).assumingMemoryBound(to: UInt8.self), count: strlen(arg))
            _ = try SafeText.utf8(bytes, what: "argument \(i)")
        }
    }

    /// A whole number from the environment variable `name`, checked like its flag: `nil` if unset.
    static func environmentNumber(_ name: String, flag: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = ProcessInfo.processInfo.environment[name] else { return nil }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw KilnError(.invalidInput, "$\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound) (like \(flag)), got '\(text.prefix(20))'")
        }
        try checkRange(n, range, "$\(name)")
        return n
    }

    /// `checkRange` for a command's `validate()`: ArgumentParser turns only a ValidationError
    /// into a usage error (exit 2).
    static func checkFlag(_ n: Int, _ range: ClosedRange<Int>, _ flag: String) throws {
        do { try checkRange(n, range, flag) } catch let e as KilnError { throw ValidationError(e.message) }
    }

    /// Throws "`what` must be from A to B, got N" unless `n` is in `range`.
    static func checkRange(_ n: Int, _ range: ClosedRange<Int>, _ what: String) throws {
        guard range.contains(n) else {
            let bounds = range.upperBound == Int.max ? "\(range.lowerBound) or more" : "from \(range.lowerBound) to \(range.upperBound)"
            throw KilnError(.invalidInput, "\(what) must be \(bounds), got \(n)")
        }
    }
}

/// An explicit exit with a code and an optional message for stderr.
struct CLIExit: Error {
    var code: Int32
    var message: String?
}

/// `--redis` and `--prefix`, shared by every command.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Redis URL: redis://[user:password@]host[:port][/db] or unix:///path.sock[?db=N]. Default: $KILN_REDIS_URL or redis://127.0.0.1:6379. Prefer the environment variable for URLs with passwords.", valueName: "url"))
    var redis: String?

    @Option(name: .long, help: ArgumentHelp("Key prefix. Default: $KILN_PREFIX or kiln.", valueName: "prefix"))
    var prefix: String?

    @Option(name: .long, help: ArgumentHelp("Read the Redis password from this file (first line), instead of the URL.", valueName: "path"))
    var redisPasswordFile: String?

    func redisConfiguration() throws -> RedisConfiguration {
        let env = ProcessInfo.processInfo.environment
        let url = redis ?? env["KILN_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        var config: RedisConfiguration
        do { config = try RedisConfiguration(url: url) } catch let e as RedisError {
            // Say where the URL came from (the message never contains the password).
            throw KilnError(.invalidInput, (redis != nil ? "--redis: " : env["KILN_REDIS_URL"] != nil ? "$KILN_REDIS_URL: " : "") + e.message)
        }
        if let file = redisPasswordFile ?? env["KILN_REDIS_PASSWORD_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw KilnError(.invalidInput, "cannot read the Redis password file '\(file)'")
            }
            config.password = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        }
        if let t = env["KILN_REDIS_TIMEOUT"] {
            do { config.commandTimeout = try KilnDuration.parse(t) } catch let e as KilnError {
                throw KilnError(e.code, "$KILN_REDIS_TIMEOUT: \(e.message)")
            }
            if config.commandTimeout <= .zero { throw KilnError(.invalidInput, "$KILN_REDIS_TIMEOUT must be more than 0, got '\(t.prefix(20))'") }
        }
        return config
    }

    func prefixValue() -> String {
        prefix ?? ProcessInfo.processInfo.environment["KILN_PREFIX"] ?? "kiln"
    }

    func client(maxPayloadBytes: Int = 1 << 20) throws -> KilnClient {
        if prefix == nil, let p = ProcessInfo.processInfo.environment["KILN_PREFIX"], !KeySchema.isValidPrefix(p) {
            throw KilnError(.invalidInput, "$KILN_PREFIX: invalid key prefix '\(p.prefix(70))': use 1-64 printable characters without spaces, braces or a trailing colon")
        }
        return try KilnClient(options: KilnClientOptions(
            redis: redisConfiguration(), prefix: prefixValue(), maxPayloadBytes: maxPayloadBytes, knownKinds: BuiltinJobs.kinds,
            retry: .none))
    }
}

/// A duration flag value: `250ms`, `30s`, `5m`, `1h` or plain seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var value: Duration
    init?(argument: String) {
        guard let v = try? KilnDuration.parse(argument) else { return nil }
        value = v
    }
    init(_ value: Duration) { self.value = value }

    /// The flags' parser: Kiln's own reason reaches the user ("The value '-1s' is invalid for
    /// '--timeout <duration>': it must not be negative").
    static func parse(_ text: String) throws -> DurationArgument {
        do { return DurationArgument(try KilnDuration.parse(text)) } catch let e as KilnError {
            throw Reason(description: e.message.components(separatedBy: "': ").dropFirst().joined(separator: "': "))
        }
    }

    struct Reason: Error, CustomStringConvertible {
        var description: String
    }
    static var defaultCompletionKind: CompletionKind { .default }
}

extension DurationArgument: CustomStringConvertible {
    var description: String { KilnDuration.format(value) }
}
