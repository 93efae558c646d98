#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnRedis
import Synchronization

/// A running pool child as the parent sees it.
struct PoolChildProcess: Sendable {
    let pid: pid_t
    /// Parent's write end of the request pipe (the child's fd 3).
    let requestFD: Int32
    /// Parent's read end of the response pipe (the child's fd 4).
    let responseFD: Int32
}

/// How a reaped child ended.
enum PoolExitStatus: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
    /// Someone else reaped it (e.g. SIGCHLD ignored), so the status is lost.
    case unknown

    init(waitStatus status: Int32) {
        let sig = status & 0x7f
        if sig == 0 {
            self = .exited((status >> 8) & 0xff)
        } else if sig != 0x7f {
            self = .signaled(sig)
        } else {
            self = .unknown
        }
    }

    /// The reason reported for a job whose child died under it.
    var crashReason: String {
        switch self {
        case .exited(let code): return "worker process exited with status \(code)"
        case .signaled(let sig): return "worker process crashed: signal \(sig)"
        case .unknown: return "worker process crashed"
        }
    }
}

typealias PoolSpawnError = ProcessSpawner.Failure

extension ProcessPool {
    /// The resolved path of `/proc/self/exe`. If the binary was replaced or deleted since it was
    /// started (a deploy), `/proc/self/exe` itself, which still refers to the running image.
    package static var currentExecutable: String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return CommandLine.arguments.first ?? "/proc/self/exe" }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { return "/proc/self/exe" }
        return path
    }

    /// The child's environment: ours without `KILN_*` and `REDIS*` variables, plus the pool markers.
    static func childEnvironment() -> [String] {
        var env = ProcessInfo.processInfo.environment
            .filter { !$0.key.hasPrefix("KILN_") && !$0.key.hasPrefix("REDIS") }
            .map { "\($0.key)=\($0.value)" }
        env.sort()
        // A crashing child should die at once and be reported, not spend time printing a
        // backtrace (the worker reports the signal); users can still opt in explicitly.
        if ProcessInfo.processInfo.environment["SWIFT_BACKTRACE"] == nil { env.append("SWIFT_BACKTRACE=enable=no") }
        env.append("KILN_POOL_CHILD=1")
        env.append("KILN_POOL_PARENT=\(getpid())")
        return env
    }

    /// Starts one child running `executable` in child mode.
    func spawnChild() throws(PoolSpawnError) -> PoolChildProcess {
        try ProcessSpawner.lock.withLock { _ throws(PoolSpawnError) -> PoolChildProcess in
            var req: [Int32] = [-1, -1]
            var resp: [Int32] = [-1, -1]
            guard pipe(&req) == 0 else { throw PoolSpawnError(call: "pipe", code: errno) }
            guard pipe(&resp) == 0 else {
                let e = errno
                close(req[0]); close(req[1])
                throw PoolSpawnError(call: "pipe", code: e)
            }
            for fd in req + resp { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            // The child's ends must not sit on 3 or 4, or the dup2s below could clobber each other.
            let childIn = Self.moveAbove4(req[0])
            let childOut = Self.moveAbove4(resp[1])
            defer { close(childIn); close(childOut) }
            // A process group of its own: Ctrl-C (SIGINT to the terminal's foreground group) must
            // reach only the worker, which then drains gracefully; the pool stops its children
            // itself. (Under systemd use KillMode=mixed, as deploy/kiln-worker.service does.)
            let pid: pid_t
            do throws(PoolSpawnError) {
                pid = try ProcessSpawner.spawn(
                    [executable], environment: environment,
                    fileActions: [.dup2(childIn, to: PoolChild.requestFD), .dup2(childOut, to: PoolChild.responseFD),
                                  .open(0, path: "/dev/null", flags: O_RDONLY), .closeFrom(5)],
                    newProcessGroup: true)
            } catch {
                close(req[1]); close(resp[0])
                throw error
            }
            if niceness > 0 { Self.renice(pid, by: niceness) }
            return PoolChildProcess(pid: pid, requestFD: req[1], responseFD: resp[0])
        }
    }

    /// Makes `pid` `by` nicer than this process (at most 19). Best effort: the child starts at our
    /// priority, and a failure (e.g. a seccomp filter) only leaves it there.
    static func renice(_ pid: pid_t, by: Int32) {
        errno = 0
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let base = errno == 0 ? own : 0
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(pid), min(19, base + by))
    }

    private static func moveAbove4(_ fd: Int32) -> Int32 {
        guard fd < 5 else { return fd }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 5)
        guard moved >= 0 else { return fd }
        close(fd)
        return moved
    }

    /// Waits up to `timeout` for the child to exit, polling without blocking; its status, or nil if
    /// it is still running.
    static func waitExit(_ pid: pid_t, timeout: Duration) -> PoolExitStatus? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pause = Backoff(initial: .microseconds(500), max: .milliseconds(10), jitter: 0)
        while true {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return PoolExitStatus(waitStatus: status) }
            if r < 0 && errno != EINTR { return .unknown }
            if clock.now >= deadline { return nil }
            let d = pause.next()
            usleep(UInt32(d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000))
        }
    }

    /// Stops a child and reaps it: closes its pipes, gives it `patience` to exit by itself,
    /// then SIGTERM, then SIGKILL after the kill grace.
    func stopChild(_ child: PoolChildProcess, patience: Duration) -> PoolExitStatus {
        close(child.requestFD)
        close(child.responseFD)
        if patience > .zero, let status = Self.waitExit(child.pid, timeout: patience) { return status }
        kill(child.pid, SIGTERM)
        if let status = Self.waitExit(child.pid, timeout: killGrace) { return status }
        kill(child.pid, SIGKILL)
        while true {
            var status: Int32 = 0
            let r = waitpid(child.pid, &status, 0)
            if r == child.pid { return PoolExitStatus(waitStatus: status) }
            if r < 0 && errno != EINTR { return .unknown }
        }
    }
}
