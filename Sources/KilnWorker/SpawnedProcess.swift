import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, an empty signal mask and default dispositions for
/// SIGTERM/SIGINT/SIGPIPE/SIGCHLD (Foundation.Process leaves SIGTERM blocked in its children,
/// which then ignore a graceful stop). Used by `kiln demo` and the tests to run workers and Redis.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (an absolute path) with `arguments` as its argv. `environment`
    /// replaces the whole environment. Each of stdin/stdout/stderr is a file path (`nil`: /dev/null).
    public init(_ arguments: [String], environment: [String: String], stdin: String? = nil, stdout: String? = nil, stderr: String? = nil) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&fa, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &fa, &attr, argv, envp)
        guard rc == 0 else {
            throw SpawnError(message: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    deinit {
        if status.withLock({ $0 }) == nil {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }
    }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// The exit code if the process has ended (128 + signal if a signal ended it); non-blocking.
    public func poll() -> Int32? {
        status.withLock { s in
            if let s { return s }
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid {
                s = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
            }
            return s
        }
    }

    /// Waits up to `timeout` for the process to end; `nil` if it is still running.
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let s = poll() { return s }
            if ContinuousClock.now >= deadline { return nil }
            // waitpid cannot be awaited; check every 10 ms rather than block a cooperative thread.
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }
}
