import Foundation

/// The ledger read as it grows: the multi-host driver's view, from outside Redis, of which host is
/// running what right now and what started where since a moment. Only whole lines are taken (a
/// line is one `write(2)`, but a read may catch the file between two).
final class LedgerTail {
    let path: String
    private var offset: UInt64 = 0
    private var carry = Data()
    private(set) var entries: [Ledger.Entry] = []
    /// Executions started and not ended, per worker: "id attempt".
    private var running: [String: Set<String>] = [:]

    init(path: String) { self.path = path }

    /// Reads what was appended since the last call.
    func refresh() {
        guard let fh = FileHandle(forReadingAtPath: path) else { return }
        defer { try? fh.close() }
        guard (try? fh.seek(toOffset: offset)) != nil, let data = try? fh.readToEnd(), !data.isEmpty else { return }
        offset += UInt64(data.count)
        carry.append(data)
        guard let lastNewline = carry.lastIndex(of: UInt8(ascii: "\n")) else { return }
        let text = String(decoding: carry[carry.startIndex..<lastNewline], as: UTF8.self)
        carry = Data(carry[carry.index(after: lastNewline)...])
        for line in text.split(separator: "\n") {
            guard let e = Self.parse(line) else { continue }
            entries.append(e)
            let key = "\(e.id) \(e.attempt)"
            if e.kind == "start" { running[e.worker, default: []].insert(key) } else { running[e.worker]?.remove(key) }
        }
    }

    /// `start ID ATTEMPT WORKER PID MS` or `end ID ATTEMPT WORKER OUTCOME MS` (see `Ledger`).
    static func parse(_ line: Substring) -> Ledger.Entry? {
        let f = line.split(separator: " ").map(String.init)
        guard f.count == 6, let attempt = Int(f[2]), let ms = Int64(f[5]) else { return nil }
        return Ledger.Entry(kind: f[0], id: f[1], attempt: attempt, worker: f[3], detail: f[4], ms: ms)
    }

    /// Job ids `worker` is running now (as far as the ledger has been read).
    func runningIDs(on worker: String) -> Set<String> {
        Set((running[worker] ?? []).map { String($0.split(separator: " ")[0]) })
    }

    /// Starts at or after `ms` (newest first scan; the ledger is in time order up to a few ms).
    func starts(since ms: Int64, where match: (Ledger.Entry) -> Bool) -> [Ledger.Entry] {
        var out: [Ledger.Entry] = []
        for e in entries.reversed() {
            if e.ms < ms - 5_000 { break }
            if e.kind == "start" && e.ms >= ms && match(e) { out.append(e) }
        }
        return out.reversed()
    }
}
