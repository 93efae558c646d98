import Foundation
import Kiln

#if canImport(Glibc)
import Glibc
#endif

/// The chaos run's append-only record of job executions, kept outside Redis so the check does not
/// trust the system it checks. Each line is one `write(2)` to a file opened with O_APPEND, so lines
/// from many processes never interleave.
///
/// Lines: `start ID ATTEMPT WORKER PID MS` when a handler begins, `end ID ATTEMPT WORKER OUTCOME MS`
/// when it returns or throws (an execution killed mid-way has no end line).
enum Ledger {
    /// From `CHAOS_LEDGER` (not a KILN_ variable, so pool children inherit it).
    static let path = ProcessInfo.processInfo.environment["CHAOS_LEDGER"]
    static let worker = ProcessInfo.processInfo.environment["CHAOS_WORKER"] ?? "?"

    static func append(_ line: String) {
        guard let path else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let text = line + "\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
    }


    static func start(_ id: String, _ attempt: Int) {
        append("start \(id) \(attempt) \(worker) \(getpid()) \(KilnClock.nowMs())")
    }

    static func end(_ id: String, _ attempt: Int, _ outcome: String) {
        append("end \(id) \(attempt) \(worker) \(outcome) \(KilnClock.nowMs())")
    }

    struct Entry {
        let kind: String
        let id: String
        let attempt: Int
        let worker: String
        let detail: String
        let ms: Int64
    }

    static func read(_ path: String) -> [Entry] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 6, let attempt = Int(f[2]), let ms = Int64(f[5]) else { return nil }
            return Entry(kind: f[0], id: f[1], attempt: attempt, worker: f[3], detail: f[4], ms: ms)
        }
    }
}
