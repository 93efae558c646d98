#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The harness's probe records (ADAPTER.md, "Probe records"): one 36-byte line
/// `"%17.6f %17.6f\n"` (job start, job end, Unix seconds) per finished job, appended to
/// `$BENCH_PROBE_DIR/probe.log` with one `write(2)` on an `O_APPEND` descriptor. Each process
/// (the worker and each pool child) opens its own descriptor, on first use.
enum Probe {
    static let recordLength = 36

    /// The descriptor, or -1 when there is no `BENCH_PROBE_DIR` (or it cannot be opened).
    private static let fd: Int32 = {
        guard let dir = getenv("BENCH_PROBE_DIR").map({ String(cString: $0) }), !dir.isEmpty else { return -1 }
        let fd = open(dir + "/probe.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 {
            let line = "kiln-peer: cannot open \(dir)/probe.log: \(String(cString: strerror(errno))); no probe records\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        return fd
    }()

    /// Unix time in seconds (CLOCK_REALTIME, microseconds are all the record keeps).
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Appends the record of one job that ran from `start` to `end`.
    static func mark(_ start: Double, _ end: Double) {
        guard fd >= 0 else { return }
        var buf = [CChar](repeating: 0, count: 64)
        let n = withVaList([start, end]) { vsnprintf(&buf, buf.count, "%17.6f %17.6f\n", $0) }
        // A time past 2286 would not fit in 17 characters; the record would then be longer.
        guard Int(n) == recordLength else { return }
        _ = buf.withUnsafeBytes { write(fd, $0.baseAddress, recordLength) }
    }
}
