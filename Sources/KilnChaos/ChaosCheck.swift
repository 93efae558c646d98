import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker

/// Checks a finished chaos run against the ledger and prints the table. Violations: a lost job, a
/// stale overwrite, two executions under one lease, an unexplained duplicate execution, a cancel
/// or timeout not honoured, a drain longer than `maxDrain` after the chaos phase, or keys left
/// behind after the result TTL that are not explained.
struct ChaosCheck {
    let run: ChaosRun
    /// Every job seen final by the observer, with its record as first seen final.
    let observed: [String: ChaosObserver.Seen]
    let ledger: [Ledger.Entry]
    let startedMs: Int64
    let chaosEndMs: Int64
    let keysBefore: Set<String>
    /// nil if the keys could not be listed.
    let keysAfter: Set<String>?

    /// Keys that legitimately outlive every job, with the reason.
    static let explainedKeys = KilnStore.keysKeptByDesign(prefix: "kiln")

    init(run: ChaosRun, finals: [String: ChaosObserver.Seen], ledger: [Ledger.Entry], startedMs: Int64, chaosEndMs: Int64,
         keysBefore: Set<String>, keysAfter: Set<String>?) {
        self.run = run
        self.observed = finals
        self.ledger = ledger
        self.startedMs = startedMs
        self.chaosEndMs = chaosEndMs
        self.keysBefore = keysBefore
        self.keysAfter = keysAfter
    }

    func report() -> Bool {
        let finals = observed.mapValues(\.record)
        let accepted = run.accepted
        let events = run.events
        var violations: [String] = []
        // Workers that died, were stopped past their lease, or were shut down: their executions
        // may legitimately be repeated elsewhere.
        let disrupted = Dictionary(grouping: events.filter { $0.worker != "-" }, by: \.worker)
        let redisBlips = events.filter { $0.worker == "-" }

        var byStatus: [String: Int] = [:]
        var lost: [String] = []
        for a in accepted {
            guard let r = finals[a.id], r.isFinal else { lost.append(a.id); continue }
            byStatus[r.statusText, default: 0] += 1
        }
        if !lost.isEmpty { violations.append("lost: \(lost.count) accepted job(s) never seen final, e.g. \(lost.prefix(3))") }

        // Stale overwrites: a success written by an attempt other than the record's last.
        var stale = 0
        for a in accepted {
            guard let r = finals[a.id], r.status == .succeeded, let text = r.result,
                  let made = try? JSONText.decode(ChaosJobs.Made.self, from: text) else { continue }
            if made.attempt != r.attempts || made.worker != (r.worker ?? "") { stale += 1 }
        }
        if stale > 0 { violations.append("stale overwrites: \(stale)") }

        // Executions per job from the ledger.
        let starts = Dictionary(grouping: ledger.filter { $0.kind == "start" }, by: \.id)
        let ends = Dictionary(grouping: ledger.filter { $0.kind == "end" }, by: { "\($0.id) \($0.attempt) \($0.worker)" })
        var duplicates = 0
        var unexplained: [String] = []
        var underOneLease = 0
        for (id, list) in starts {
            let sorted = list.sorted { $0.ms < $1.ms }
            // Two starts of the same attempt are fine only if the first worker handed it back (SIGTERM).
            for (attempt, same) in Dictionary(grouping: sorted, by: \.attempt) where same.count > 1 {
                if !same.dropLast().allSatisfy({ disrupted[$0.worker]?.contains { $0.kind == .term } == true }) {
                    underOneLease += 1
                    unexplained.append("\(id) attempt \(attempt) started \(same.count)× under one lease")
                }
            }
            // A repeat after an execution that did not end by itself (no end line, or stopped) is a
            // duplicate execution; it must be explained by what happened to that worker.
            for e in sorted.dropLast() {
                let end = ends["\(id) \(e.attempt) \(e.worker)"]?.first
                let endedByItself = end.map { ["error", "crash", "ok", "zero"].contains($0.detail) } ?? false
                let crashJob = accepted.first { $0.id == id }?.type == "chaos.crash"
                if endedByItself || crashJob { continue }
                duplicates += 1
                let explained = disrupted[e.worker] != nil
                    || redisBlips.contains { $0.start - 3000 <= e.ms && e.ms <= $0.end + 3000 }
                if !explained { unexplained.append("\(id) attempt \(e.attempt) on \(e.worker) was repeated with no kill/stop/shutdown of that worker") }
            }
        }
        if underOneLease > 0 || !unexplained.isEmpty {
            violations.append("unexplained executions: \(unexplained.count), e.g. \(unexplained.prefix(3))")
        }

        // Cancels.
        var cancelHonoured = 0
        var cancelBroken: [String] = []
        for c in run.cancels {
            guard let r = finals[c.id] else { continue }
            switch c.outcome {
            case .cancelled:
                let lateStart = starts[c.id]?.contains { $0.ms > c.ms + 50 } ?? false
                if r.status == .cancelled && !lateStart { cancelHonoured += 1 } else { cancelBroken.append("\(c.id): queued cancel ended \(r.statusText)") }
            case .stopping, .stopped:
                if r.status == .cancelled || r.status == .succeeded || r.status == .dead || r.status == .timedOut || r.status == .failed {
                    cancelHonoured += 1
                } else {
                    cancelBroken.append("\(c.id): running cancel ended \(r.statusText)")
                }
            case .alreadyFinished:
                cancelHonoured += 1
            }
        }
        if !cancelBroken.isEmpty { violations.append("cancels not honoured: \(cancelBroken.prefix(3))") }

        // Timeouts: jobs made to time out end timed_out (or cancelled, if a cancel got there first).
        let timeoutJobs = accepted.filter { $0.expect == .timedOut }
        let cancelledIDs = Set(run.cancels.map(\.id))
        var timeoutHonoured = 0
        var timeoutBroken: [String] = []
        for a in timeoutJobs {
            guard let r = finals[a.id] else { continue }
            if r.status == .timedOut || (cancelledIDs.contains(a.id) && r.status == .cancelled) || r.error?.type == "worker_lost" {
                timeoutHonoured += 1
            } else {
                timeoutBroken.append("\(a.id) ended \(r.statusText)")
            }
        }
        if !timeoutBroken.isEmpty { violations.append("timeouts not honoured: \(timeoutBroken.prefix(3))") }

        // Other outcomes against expectations (reported, not violations: kills can exhaust retries).
        var unexpected = 0
        for a in accepted {
            guard let r = finals[a.id], r.isFinal, r.status != .cancelled else { continue }
            let want: JobStatus = a.expect == .success ? .succeeded : (a.expect == .dead ? .dead : .timedOut)
            if r.status != want { unexpected += 1 }
        }
        // Drain: from the end of the chaos phase to the last final state (its finished_at as
        // written by Redis, else when the observer saw it).
        let lastFinalMs = observed.values.map { $0.record.finishedAt ?? $0.observedMs }.max() ?? chaosEndMs
        let drainMs = max(0, lastFinalMs - chaosEndMs)
        if drainMs > Int64(run.config.maxDrain.components.seconds * 1000) {
            violations.append("drain: last final \(Self.seconds(drainMs)) after the chaos phase (limit \(run.config.maxDrain))")
        }
        let startTimes = ledger.filter { $0.kind == "start" }.map(\.ms)
        let during = startTimes.filter { $0 < chaosEndMs }.count
        let after = startTimes.filter { $0 >= chaosEndMs }.count
        let chaosSeconds = Double(max(1, chaosEndMs - startedMs)) / 1000
        let afterText = drainMs > 0
            ? String(format: "%.1f/s", Double(after) / (Double(drainMs) / 1000)) + " (\(after) in \(Self.seconds(drainMs)))"
            : "\(after) (nothing left to run)"
        let execText = String(format: "during chaos %.1f/s", Double(during) / chaosSeconds) + "; after it " + afterText

        // Keys left once every result TTL has passed, by name, against the baseline.
        var keysText = "unknown (could not list keys)"
        if let keysAfter {
            let left = keysAfter.subtracting(keysBefore).sorted()
            let unexplained = left.filter { Self.explainedKeys[$0] == nil }
            let names = left.prefix(12).map { Self.explainedKeys[$0] != nil ? "\($0) (explained)" : $0 }.joined(separator: ", ")
            keysText = "\(keysBefore.count) / \(keysAfter.count); left: \(left.isEmpty ? "none" : names + (left.count > 12 ? ", ..." : "")); unexplained \(unexplained.count)"
            if !unexplained.isEmpty {
                violations.append("keys left after TTL: \(unexplained.count), e.g. \(unexplained.prefix(10))")
            }
        } else {
            violations.append("keys after TTL: could not list them")
        }

        let table: [(String, String)] = [
            ("jobs accepted", "\(accepted.count) (\(run.rejected) refused while Redis was away)"),
            ("final states", byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
            ("lost", "\(lost.count)"),
            ("stale overwrites", "\(stale)"),
            ("executions (ledger)", "\(starts.values.map(\.count).reduce(0, +)) for \(starts.count) jobs"),
            ("duplicate executions", "\(duplicates), unexplained \(unexplained.count)"),
            ("cancels honoured", "\(cancelHonoured)/\(run.cancels.count)"),
            ("timeouts honoured", "\(timeoutHonoured)/\(timeoutJobs.count)"),
            ("other outcomes than planned", "\(unexpected) (retries used up by kills, worker_lost)"),
            ("chaos events", Dictionary(grouping: events, by: \.kind.rawValue).sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value.count)" }.joined(separator: ", ")),
            ("drain time", lost.isEmpty ? "\(Self.seconds(drainMs)) from the end of the chaos phase to the last final state"
                + (lastFinalMs < chaosEndMs ? " (all final \(Self.seconds(chaosEndMs - lastFinalMs)) before it ended)" : "")
                : "incomplete: \(lost.count) job(s) never final; last final \(Self.seconds(drainMs)) after the chaos phase"),
            ("executions per second", execText),
            ("Redis keys before / after TTL", keysText),
        ]
        let w = table.map(\.0.count).max() ?? 0
        print("\n| check | result |\n|---|---|")
        for (k, v) in table { print("| \(k)\(String(repeating: " ", count: w - k.count)) | \(v) |") }
        if violations.isEmpty {
            print("\nkiln-chaos: PASS — no violations")
        } else {
            print("\nkiln-chaos: FAIL")
            for v in violations { print("  violation: \(v)") }
        }
        if let keysAfter, !keysAfter.subtracting(keysBefore).isEmpty {
            for k in keysAfter.subtracting(keysBefore).sorted() {
                if let why = Self.explainedKeys[k] { print("  key \(k): \(why)") }
            }
        }
        return violations.isEmpty
    }

    static func seconds(_ ms: Int64) -> String { String(format: "%.1f s", Double(ms) / 1000) }
}

/// What `appendfsync everysec` can lose when the Redis host dies, next to `always`.
enum EverysecProbe {
    static let jobs = 20_000

    static func run(dir: String) async -> [String] {
        var out: [String] = []
        for mode in ["always", "everysec"] {
            do {
                let server = try LocalRedisServer(extraArgs: ["--appendonly", "yes", "--appendfsync", mode], dir: "\(dir)-\(mode)")
                let client = try KilnClient(options: KilnClientOptions(redis: try RedisConfiguration(url: server.url), retry: .none))
                var ids: [String] = []
                for chunk in stride(from: 0, to: jobs, by: 500) {
                    ids += try await client.enqueueBatch((chunk..<min(jobs, chunk + 500)).map { _ in EnqueueRequest(type: "noop", payload: "null") })
                }
                server.process.signal(SIGKILL)  // the host dies right after the last acknowledgement
                _ = await server.process.wait(timeout: .seconds(10))
                client.close()
                let again = try LocalRedisServer(extraArgs: ["--appendonly", "yes", "--appendfsync", mode], dir: server.dir, port: server.port)
                let c2 = try KilnClient(options: KilnClientOptions(redis: try RedisConfiguration(url: again.url)))
                let present = try await c2.store.exist(ids.map { ("default", $0) }).filter { $0 }.count
                c2.close()
                again.stop()
                out.append("appendfsync \(mode): \(ids.count - present) of \(ids.count) acknowledged jobs lost")
            } catch {
                out.append("appendfsync \(mode): probe failed: \(error)")
            }
        }
        return out
    }
}
