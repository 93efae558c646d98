import Foundation
import Kiln

/// Checks a finished multi-host run: Redis' final records against the ledger (written by the
/// handlers, outside Redis), the faults the driver staged, and the workers' logs. Prints two
/// tables and returns whether there was no violation.
struct HostsCheck {
    struct Host {
        let name: String
        let pid: Int32
        /// The worker process was still the one started at the beginning when the drain ended.
        let alive: Bool
        /// (job id, attempt) of every "result discarded" in its log: an outcome the finish script
        /// refused because the job's fencing token had moved on.
        let discarded: [(id: String, attempt: Int)]
        /// (job id, attempt) of every "job stopped: its lease was lost": the heartbeat's renewal (also
        /// fenced by the token) said so before the outcome was written, so nothing was.
        let dropped: [(id: String, attempt: Int)]
    }

    let jobs: [HostJob]
    let records: [String: JobRecord]
    let observedFinal: Set<String>
    let missing: Set<String>
    let ledger: [Ledger.Entry]
    let faults: [HostFault]
    let driverProblems: [String]
    let hosts: [Host]
    let start: Int64
    let enqueueMs: Int64
    let drainMs: Int64
    let lastFinishedAt: Int64

    /// An execution that ended (handler returned) this long before a fault began may still have had
    /// its outcome in flight to Redis when the fault hit: the workers' command timeout.
    static let writeMarginMs: Int64 = 2_000
    /// A lease taken by a request the faulty host made before the fault ended can reach Redis only
    /// after it (a request queued while the connection was down carries the time it was made), so
    /// it runs out at most one lease after the fault ended.
    static let leaseMs = KilnDuration.milliseconds(HostsConfig.lease)

    /// (job id, attempt) of the lines of a worker log that contain `message` (swift-log's `key=value` metadata).
    static func logged(_ message: String, in log: String) -> [(id: String, attempt: Int)] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains(message) }.compactMap { line in
            let words = line.split(separator: " ")
            guard let id = words.first(where: { $0.hasPrefix("job.id=") })?.dropFirst(7),
                  let attempt = words.first(where: { $0.hasPrefix("attempt=") }).flatMap({ Int($0.dropFirst(8)) }) else { return nil }
            return (String(id), attempt)
        }
    }

    func report() -> Bool {
        var violations = driverProblems
        let starts = Dictionary(grouping: ledger.filter { $0.kind == "start" }, by: \.id)
        var ends: [String: Ledger.Entry] = [:]
        for e in ledger where e.kind == "end" { ends["\(e.id) \(e.attempt) \(e.worker)"] = e }
        func end(of e: Ledger.Entry) -> Ledger.Entry? { ends["\(e.id) \(e.attempt) \(e.worker)"] }
        /// The fault that caught execution `e`: on the faulty host, under a lease taken before the
        /// fault ended (started at most one lease after), and not ended, with its outcome written,
        /// before the fault began.
        func fault(caught e: Ledger.Entry) -> HostFault? {
            faults.first { f in
                f.host == e.worker && e.ms <= f.end + Self.leaseMs && (end(of: e).map { $0.ms >= f.start - Self.writeMarginMs } ?? true)
            }
        }

        // Lost: no final state observed while the run lasted, or no final record at the end.
        let lost = jobs.filter { !observedFinal.contains($0.id) || records[$0.id]?.isFinal != true }
        if !lost.isEmpty { violations.append("lost: \(lost.count) job(s) without a final state (\(missing.count) records gone), e.g. \(lost.prefix(3).map(\.id))") }
        var byStatus: [String: Int] = [:]
        for j in jobs { if let r = records[j.id], r.isFinal { byStatus[r.statusText, default: 0] += 1 } }

        // Stale overwrites: a success whose result was made by another attempt than the record's last.
        let stale = jobs.filter { j in
            guard let r = records[j.id], r.status == .succeeded, let text = r.result,
                  let made = try? JSONText.decode(ChaosJobs.Made.self, from: text) else { return false }
            return made.attempt != r.attempts || made.worker != (r.worker ?? "")
        }
        if !stale.isEmpty { violations.append("stale overwrites: \(stale.count), e.g. \(stale.prefix(3).map(\.id))") }

        // Executions: one attempt started twice (two executions under one lease) is a violation; a
        // repeat after an execution that did not end by itself with a retryable failure is a
        // duplicate execution and must have been caught in flight by the cut or the stall.
        var underOneLease: [String] = []
        var duplicates: [String: (inFlight: Int, across: Int)] = [:]
        var unexplained: [String] = []
        for (id, list) in starts {
            for (attempt, same) in Dictionary(grouping: list, by: \.attempt) where same.count > 1 {
                underOneLease.append("\(id) attempt \(attempt) on \(same.map(\.worker))")
            }
            // In lease order: attempts are numbered by Redis as it leases them, while a start line
            // is written when the handler begins (a stalled host writes it after it resumes).
            for e in list.sorted(by: { ($0.attempt, $0.ms) < ($1.attempt, $1.ms) }).dropLast() where end(of: e)?.detail != "error" {
                if let f = fault(caught: e) {
                    if e.ms > f.end { duplicates["\(f.kind.rawValue) \(f.host)", default: (0, 0)].across += 1 } else {
                        duplicates["\(f.kind.rawValue) \(f.host)", default: (0, 0)].inFlight += 1
                    }
                } else {
                    unexplained.append("\(id) attempt \(e.attempt) on \(e.worker) (ended \(end(of: e)?.detail ?? "never")) ran again")
                }
            }
        }
        if !underOneLease.isEmpty { violations.append("executions under one lease: \(underOneLease.count), e.g. \(underOneLease.prefix(3))") }
        if !unexplained.isEmpty { violations.append("unexplained duplicate executions: \(unexplained.count), e.g. \(unexplained.prefix(3))") }

        // Outcomes other than planned must be jobs a fault caught on their last attempt (worker_lost).
        var otherOutcomes = 0
        var otherUnexplained: [String] = []
        for j in jobs {
            guard let r = records[j.id], r.isFinal else { continue }
            let want: JobStatus = j.expect == .success ? .succeeded : (j.expect == .dead ? .dead : .timedOut)
            if r.status == want { continue }
            otherOutcomes += 1
            // The last lease was the faulty host's, taken before the fault ended (with or without an
            // execution: a lease whose reply was lost in the cut never started).
            let caught = faults.contains { f in
                r.worker == f.host && (r.startedAt ?? 0) <= f.end + Self.leaseMs && (r.startedAt ?? 0) >= f.start - 30_000
            }
            if r.error?.type != "worker_lost" || !caught { otherUnexplained.append("\(j.id) (\(j.type)) ended \(r.statusText) \(r.error?.type ?? "")") }
        }
        if !otherUnexplained.isEmpty { violations.append("unexplained outcomes: \(otherUnexplained.count), e.g. \(otherUnexplained.prefix(3))") }

        // Each fault: jobs in flight reclaimed and run elsewhere; late results refused; the host back
        // at work in the same worker process.
        var faultRows: [(String, String)] = []
        if faults.count != 2 { violations.append("faults staged: \(faults.count) of 2 (link cut, stall)") }
        for f in faults {
            guard let host = hosts.first(where: { $0.name == f.host }) else { continue }
            // In flight: started before the fault took effect and not ended before (an execution that
            // ended while the `ip` command or the signals were under way is counted neither way).
            let inFlight = Set(ledger.filter { e in
                e.kind == "start" && e.worker == f.host && e.ms <= f.applied && (end(of: e).map { $0.ms >= f.applied } ?? true)
            }.map(\.id))
            let rerun = inFlight.filter { id in (starts[id] ?? []).contains { $0.worker != f.host && $0.ms >= f.start } }
            // Late outcomes: executions in flight at the fault that ended by themselves after it
            // took effect; their outcome could reach Redis only after the fault. Each was refused (the
            // fencing token had moved on: "result discarded" in the worker log) or written (no newer
            // attempt had been leased). A success written over a newer attempt, or one neither
            // written nor refused, is a violation; so is a refusal of the attempt the record holds.
            let late = ledger.filter { e in
                guard e.kind == "start", e.worker == f.host, e.ms <= f.end, let end = end(of: e) else { return false }
                return end.ms >= f.applied && ["ok", "error"].contains(end.detail)
            }
            let refusedKeys = Set(host.discarded.map { "\($0.id) \($0.attempt)" })
            let droppedKeys = Set(host.dropped.map { "\($0.id) \($0.attempt)" })
            let refused = late.filter { refusedKeys.contains("\($0.id) \($0.attempt)") }
            let dropped = late.filter { droppedKeys.contains("\($0.id) \($0.attempt)") }
            let lateOK = late.filter { end(of: $0)?.detail == "ok" }
            let kept = lateOK.filter { e in
                guard let r = records[e.id], r.status == .succeeded, let text = r.result,
                      let made = try? JSONText.decode(ChaosJobs.Made.self, from: text) else { return false }
                return made.worker == f.host && made.attempt == e.attempt
            }
            let keptWrongly = kept.filter { e in (starts[e.id] ?? []).contains { $0.attempt > e.attempt } }
            let unaccounted = lateOK.filter { e in
                let key = "\(e.id) \(e.attempt)"
                return !refusedKeys.contains(key) && !droppedKeys.contains(key) && !kept.contains { $0.id == e.id }
            }
            let failuresWritten = late.filter { e in
                let key = "\(e.id) \(e.attempt)"
                return end(of: e)?.detail == "error" && !refusedKeys.contains(key) && !droppedKeys.contains(key)
            }.count
            let refusedButKept = host.discarded.filter { d in
                guard let r = records[d.id], r.status == .succeeded, let text = r.result,
                      let made = try? JSONText.decode(ChaosJobs.Made.self, from: text) else { return false }
                return made.worker == f.host && made.attempt == d.attempt
            }
            let after = (starts.values.joined()).filter { $0.worker == f.host && $0.ms >= f.end }
            let samePid = after.filter { $0.detail == String(host.pid) }
            if inFlight.isEmpty || rerun.isEmpty { violations.append("\(f.kind.rawValue) \(f.host): none of its \(inFlight.count) in-flight jobs ran on another host") }
            if !keptWrongly.isEmpty || !refusedButKept.isEmpty || !unaccounted.isEmpty {
                violations.append("\(f.kind.rawValue) \(f.host): late successes kept over a newer attempt: \(keptWrongly.count), refused yet kept: \(refusedButKept.count), neither written nor refused: \(unaccounted.count)")
            }
            if f.kind == .cut && refused.isEmpty && dropped.isEmpty {
                violations.append("link cut \(f.host): no late outcome was refused or dropped by the fencing token (none in its log)")
            }
            if !host.alive || samePid.isEmpty {
                violations.append("\(f.kind.rawValue) \(f.host): did not rejoin in the same worker process (alive \(host.alive), I/O jobs in pid \(host.pid) afterwards: \(samePid.count))")
            }
            let what = f.kind == .cut ? "link down" : "SIGSTOP of \(f.stopped.count) process(es)"
            faultRows.append(("\(f.kind.rawValue) \(f.host)", "\(what) for \(ms(f.end - f.start)) at +\(ms(f.start - start)); \(inFlight.count) job(s) in flight, \(rerun.count) re-run on other hosts"))
            faultRows.append(("  late outcomes of \(f.host)", "\(late.count) in-flight executions ended ok/error after it took effect: \(refused.count) refused as stale by Redis, \(dropped.count) dropped by the worker (lease found lost first), \(kept.count) successes and \(failuresWritten) failures written (no newer attempt yet)"))
            faultRows.append(("  \(f.host) after it", "first job \(f.rejoined.map { ms($0.ms - f.end) } ?? "never") later; \(after.count) executions after, \(samePid.count) of them I/O jobs in its original worker pid \(host.pid) (\(host.alive ? "never restarted" : "EXITED"))"))
        }
        for h in hosts where !h.alive { violations.append("\(h.name): worker process exited during the run") }

        let executions = starts.values.map(\.count).reduce(0, +)
        let kinds = Dictionary(grouping: jobs, by: \.type).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }.joined(separator: ", ")
        let table: [(String, String)] = [
            ("jobs", "\(jobs.count) (\(kinds)), enqueued in \(ms(enqueueMs))"),
            ("final states", byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
            ("lost", "\(lost.count)"),
            ("stale overwrites", "\(stale.count)"),
            ("executions (ledger)", "\(executions) for \(starts.count) jobs"),
            ("executions under one lease", "\(underOneLease.count)"),
            ("duplicate executions", "\(duplicates.values.map { $0.inFlight + $0.across }.reduce(0, +)): "
                + duplicates.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.inFlight) in flight + \($0.value.across) started after it on a lease taken before it ended" }.joined(separator: "; ")
                + "; unexplained \(unexplained.count)"),
            ("other outcomes than planned", "\(otherOutcomes) (worker_lost: last attempt caught by a fault), unexplained \(otherUnexplained.count)"),
            ("drain time", "\(ms(drainMs)) from the first enqueue to the last final state seen (last finished_at +\(ms(lastFinishedAt - start)))"),
        ] + faultRows
        printTable(["check", "result"], table.map { [$0.0, $0.1] })

        let cut = faults.first { $0.kind == .cut }, stall = faults.first { $0.kind == .stall }
        let rows = hosts.map { h -> [String] in
            let mine = ledger.filter { $0.kind == "start" && $0.worker == h.name }
            return [h.name, "\(h.pid)", "\(mine.count)", cut.map { f in "\(mine.filter { $0.ms >= f.end }.count)" } ?? "-",
                    stall.map { f in "\(mine.filter { $0.ms >= f.end }.count)" } ?? "-", "\(h.discarded.count)", "\(h.dropped.count)"]
        }
        printTable(["host", "worker pid", "executions", "after the cut", "after the stall", "outcomes refused (stale)", "jobs stopped (lease lost)"], rows)

        if violations.isEmpty {
            print("\nkiln-chaos hosts: PASS — no violations")
        } else {
            print("\nkiln-chaos hosts: FAIL")
            for v in violations { print("  violation: \(v)") }
        }
        return violations.isEmpty
    }

    private func ms(_ v: Int64) -> String { v >= 10_000 ? String(format: "%.1f s", Double(v) / 1000) : "\(v) ms" }

    private func printTable(_ header: [String], _ rows: [[String]]) {
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { $0.element + String(repeating: " ", count: widths[$0.offset] - $0.element.count) }.joined(separator: " | ") + " |"
        }
        print("\n" + line(header))
        print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
        for r in rows { print(line(r)) }
    }
}
