import Foundation
import KilnTestSupport
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// A child process for the tests: `SpawnedProcess` (posix_spawn with a clean signal mask, so a
/// worker reacts to SIGTERM) with stdout and stderr captured in temp files.
final class ChildProcess: Sendable {
    let process: SpawnedProcess
    let outputPath: String
    let errorPath: String
    var pid: pid_t { process.pid }

    /// Starts `arguments[0]` with the rest as its arguments, in this process's environment plus `environment`.
    init(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws {
        let base = NSTemporaryDirectory() + "kiln-test-\(UUID().uuidString)"
        outputPath = base + ".out"
        errorPath = base + ".err"
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process = try SpawnedProcess(arguments, environment: env, stdin: stdin, stdout: outputPath, stderr: errorPath)
    }

    deinit {
        if process.poll() == nil {
            process.signal(SIGKILL)
            _ = process.poll()
        }
        try? FileManager.default.removeItem(atPath: outputPath)
        try? FileManager.default.removeItem(atPath: errorPath)
    }

    func signal(_ sig: Int32) { process.signal(sig) }

    /// What the process wrote to stdout.
    var stdout: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    /// What the process wrote to stderr.
    var stderr: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }
    var output: String { stdout + stderr }

    /// The exit status if the process has ended (non-blocking).
    func poll() -> Int32? { process.poll() }

    /// Waits for the process to end, up to `timeout`; returns its exit code (128+signal if killed).
    func wait(timeout: Duration = .seconds(30)) async throws -> Int32 {
        if let code = await process.wait(timeout: timeout) { return code }
        throw TestFailure("process \(pid) did not exit within \(timeout); output:\n\(output.suffix(2000))")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Waits until `condition` holds, checking every 10 ms, or fails after `timeout` with `message`.
func eventually(_ message: @autoclosure () -> String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestFailure("timed out after \(timeout): \(message())")
}
