#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The one way Kiln starts a child process (the pool's children, `LocalRedisServer`, workers in
/// `kiln demo`, chaos, bench and the tests): `posix_spawn` with an empty signal mask and default
/// dispositions for SIGTERM, SIGINT, SIGPIPE and SIGCHLD. Never use Foundation.Process for a
/// child: it leaves SIGTERM blocked in its children, which then ignore a graceful stop.
package enum ProcessSpawner {
    /// What the child's file descriptors become, applied in order before it starts.
    package enum FileAction: Sendable {
        /// `open(path, flags, mode)` on `fd`.
        case open(Int32, path: String, flags: Int32, mode: mode_t = 0)
        /// `dup2(from, to)`.
        case dup2(Int32, to: Int32)
        /// Close every descriptor from `fd` up (glibc >= 2.34; skipped where it is missing).
        case closeFrom(Int32)
    }

    /// A failed spawn: the call and its errno.
    package struct Failure: Error, CustomStringConvertible {
        package var call: String
        package var code: Int32
        package init(call: String, code: Int32) {
            self.call = call
            self.code = code
        }
        package var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    /// Serializes pipe creation and spawning, so a descriptor created for one child (before its
    /// CLOEXEC flag is set) can never be inherited by another child spawned at the same moment.
    package static let lock = Mutex<Void>(())

    /// Starts `arguments[0]` (an absolute path) with `arguments` as its argv and `environment`
    /// (`NAME=value` strings) as its whole environment. `newProcessGroup`: the child leads a
    /// process group of its own, so a terminal's Ctrl-C does not reach it.
    package static func spawn(_ arguments: [String], environment: [String], fileActions: [FileAction],
                              newProcessGroup: Bool = false) throws(Failure) -> pid_t {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        for action in fileActions {
            switch action {
            case let .open(fd, path, flags, mode): posix_spawn_file_actions_addopen(&fa, fd, path, flags, mode)
            case let .dup2(from, to): posix_spawn_file_actions_adddup2(&fa, from, to)
            case let .closeFrom(fd):
                // glibc >= 2.34 has addclosefrom_np but the Glibc module does not import it.
                typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
                if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
                    _ = unsafeBitCast(sym, to: CloseFrom.self)(&fa, fd)
                }
            }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attr, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attr, Int16(flags))

        var pid: pid_t = 0
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in posix_spawn(&pid, arguments[0], &fa, &attr, argv, envp) }
        }
        guard rc == 0 else { throw Failure(call: "posix_spawn \(arguments[0])", code: rc) }
        return pid
    }

    /// The exit code of a `waitpid` status: the code, or 128 + the signal that ended it.
    package static func exitCode(waitStatus st: Int32) -> Int32 {
        (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { for p in ptrs { free(p) } }
        return ptrs.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
