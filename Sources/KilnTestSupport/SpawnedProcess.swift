import Foundation
import KilnWorker
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `ProcessSpawner` (posix_spawn, empty signal mask, default
/// dispositions), stdin/stdout/stderr on files. Used by `LocalRedisServer`, `kiln demo`, chaos,
/// bench and the tests to run workers and Redis.
package final class SpawnedProcess: Sendable {
    package let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (an absolute path) with `arguments` as its argv. `environment`
    /// replaces the whole environment. Each of stdin/stdout/stderr is a file path (`nil`: /dev/null).
    package init(_ arguments: [String], environment: [String: String], stdin: String? = nil, stdout: String? = nil, stderr: String? = nil) throws {
        let out = O_WRONLY | O_CREAT | O_APPEND
        do {
            pid = try ProcessSpawner.lock.withLock { _ in
                try ProcessSpawner.spawn(
                    arguments, environment: environment.map { "\($0.key)=\($0.value)" },
                    fileActions: [.open(0, path: stdin ?? "/dev/null", flags: O_RDONLY),
                                  .open(1, path: stdout ?? "/dev/null", flags: out, mode: 0o644),
                                  .open(2, path: stderr ?? "/dev/null", flags: out, mode: 0o644)])
            }
        } catch let e as ProcessSpawner.Failure {
            throw SpawnError(message: "cannot start \(arguments[0]): \(String(cString: strerror(e.code)))")
        }
    }

    deinit {
        if status.withLock({ $0 }) == nil {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }
    }

    package func signal(_ sig: Int32) { kill(pid, sig) }

    /// The exit code if the process has ended (128 + signal if a signal ended it); non-blocking.
    package func poll() -> Int32? {
        status.withLock { s in
            if let s { return s }
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid { s = ProcessSpawner.exitCode(waitStatus: st) }
            return s
        }
    }

    /// Waits up to `timeout` for the process to end; `nil` if it is still running.
    package func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let s = poll() { return s }
            if ContinuousClock.now >= deadline { return nil }
            // waitpid cannot be awaited; check every 10 ms rather than block a cooperative thread.
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A process that could not be started, in one line.
    package struct SpawnError: Error, CustomStringConvertible {
        package let message: String
        package init(message: String) { self.message = message }
        package var description: String { message }
    }
}
