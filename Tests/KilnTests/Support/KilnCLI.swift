import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `kiln` binary against a test Redis and prefix.
struct KilnCLI {
    let redis: TestRedis
    let prefix: String

    struct Result {
        let code: Int32
        let stdout: String
        let stderr: String
        var line: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    var environment: [String: String] { ["KILN_REDIS_URL": redis.url, "KILN_PREFIX": prefix] }

    /// Runs `kiln ARGS...` to completion.
    @discardableResult
    func run(_ args: [String], stdin: String? = nil, timeout: Duration = .seconds(60)) async throws -> Result {
        var stdinPath: String?
        if let stdin {
            stdinPath = NSTemporaryDirectory() + "kiln-stdin-\(UUID().uuidString)"
            try stdin.write(toFile: stdinPath!, atomically: true, encoding: .utf8)
        }
        defer { if let stdinPath { try? FileManager.default.removeItem(atPath: stdinPath) } }
        let p = try ChildProcess([KilnBinary.path] + args, environment: environment, stdin: stdinPath)
        let code = try await p.wait(timeout: timeout)
        return Result(code: code, stdout: p.stdout, stderr: p.stderr)
    }

    func run(_ args: String...) async throws -> Result { try await run(args) }

    /// Starts `kiln worker ARGS...` and waits until it has started.
    func startWorker(_ args: [String] = [], name: String? = nil) async throws -> ChildProcess {
        var all = [KilnBinary.path, "worker"] + args
        if let name { all += ["--name", name] }
        let p = try ChildProcess(all, environment: environment)
        try await eventually("worker did not start: \(p.output.suffix(1500))", timeout: .seconds(30)) {
            if p.poll() != nil { throw TestFailure("worker exited early: \(p.output.suffix(1500))") }
            return p.stderr.contains("worker started")
        }
        return p
    }

    /// Stops a worker with SIGTERM and waits for it to exit.
    func stop(_ worker: ChildProcess) async throws {
        worker.signal(SIGTERM)
        _ = try await worker.wait(timeout: .seconds(40))
    }
}
