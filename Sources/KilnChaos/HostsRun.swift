import Foundation
import Kiln
import KilnRedis
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// A job of the multi-host run, as the producer asked for it (kept outside Redis).
struct HostJob: Sendable {
    enum Expect: String, Sendable { case success, dead, timedOut = "timed_out" }
    let id: String
    let type: String
    let expect: Expect
    /// A job that is run again when its worker loses it (it has attempts left and no short timeout).
    var rerunnable: Bool { expect == .success }
}

/// One fault and what the driver saw around it (times in ms since the epoch, like the ledger).
struct HostFault: Sendable {
    enum Kind: String, Sendable { case cut = "link cut", stall = "SIGSTOP" }
    let kind: Kind
    let host: String
    /// Just before the fault was made (`ip link set … down`, SIGSTOP), just after it took effect,
    /// and just before it was undone.
    var start: Int64 = 0
    var applied: Int64 = 0
    var end: Int64 = 0
    /// Jobs the host was running (per the ledger) just before and just after the fault began.
    var inFlight: Set<String> = []
    /// Processes stopped (stall only).
    var stopped: [pid_t] = []
    /// The host's first execution after the fault ended.
    var rejoined: Ledger.Entry?
}

/// The multi-host run: workers on several network-namespace hosts drain one queue of mixed chaos
/// jobs; meanwhile one host is cut off the network and another is stalled, each past a lease. Then
/// `HostsCheck` compares Redis' final records with the ledger.
final class HostsRun: @unchecked Sendable {
    let config: HostsConfig
    let ledger: String
    let hosts: [NetnsHost]
    private let lock = NSLock()
    // Guarded by `lock`.
    private var finalCount = 0
    private var observed: (final: Set<String>, missing: Set<String>, lastFinal: Int64) = ([], [], 0)
    var faults: [HostFault] = []
    var problems: [String] = []

    init(config: HostsConfig) {
        self.config = config
        ledger = config.dir + "/ledger"
        hosts = config.hosts.map {
            NetnsHost(name: $0.name, namespace: $0.namespace, ip: config.ip, bridgeNamespace: config.bridgeNamespace, dir: config.dir)
        }
    }


    func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func problem(_ text: String) { locked { problems.append(text) } }

    func run() async throws -> Bool {
        let cut = hosts[1], stall = hosts[2]
        print("kiln-chaos hosts: \(config.jobs) jobs, hosts \(hosts.map(\.name).joined(separator: " ")) (\(config.concurrency) I/O slots + 1 pool process each), lease \(KilnDuration.format(HostsConfig.lease)), seed \(config.seed)")
        print("kiln-chaos hosts: redis \(config.redis); \(cut.name) gets its link cut, \(stall.name) gets stalled")
        _ = FileManager.default.createFile(atPath: ledger, contents: nil)
        let client = try KilnClient(options: KilnClientOptions(
            redis: try RedisConfiguration(url: config.redis), retry: RetryPolicy(attempts: 20, backoff: .milliseconds(100))))
        defer { client.close() }
        guard try await client.connection.send(["DBSIZE"]).int == 0 else { throw HostsError("the Redis at \(config.redis) is not empty") }
        for h in hosts { try h.start(redis: config.redis, ledger: ledger, concurrency: config.concurrency) }

        let t0 = KilnClock.nowMs()
        let jobs = try await enqueue(client)
        let enqueued = KilnClock.nowMs() - t0
        print("kiln-chaos hosts: \(jobs.count) jobs enqueued in \(enqueued) ms; draining")
        let types = Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, $0) })
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.drive(cut: cut, stall: stall, jobs: types, total: jobs.count) }
            group.addTask {
                let o = await self.watch(client, jobs.map(\.id), deadline: ContinuousClock.now + .seconds(600))
                self.locked { self.observed = o }
            }
        }
        let observed = locked { self.observed }
        let drained = observed.lastFinal - t0
        print("kiln-chaos hosts: drained in \(String(format: "%.1f", Double(drained) / 1000)) s")

        var alive: [String: Bool] = [:]
        for h in hosts { alive[h.name] = h.worker?.poll() == nil }
        for h in hosts { await h.stop() }
        let records = try await fetchRecords(client, jobs.map(\.id))
        let check = HostsCheck(
            jobs: jobs, records: records, observedFinal: observed.final, missing: observed.missing, ledger: Ledger.read(ledger),
            faults: locked { faults }, driverProblems: locked { problems },
            hosts: hosts.map { HostsCheck.Host(name: $0.name, pid: $0.worker?.pid ?? 0, alive: alive[$0.name] ?? false,
                                                discarded: HostsCheck.logged("result discarded", in: $0.log),
                                                dropped: HostsCheck.logged("job stopped: its lease was lost", in: $0.log)) },
            start: t0, enqueueMs: enqueued, drainMs: drained, lastFinishedAt: records.values.compactMap(\.finishedAt).max() ?? 0)
        return check.report()
    }

    // MARK: producer

    /// 20,000 (HOSTS_JOBS) jobs in one queue: async sleeps of 20-400 ms 50 %, CPU spins in the pool 20 %,
    /// always-failing jobs with 2 retries 15 %, and sleeps stopped by a 150 ms timeout 15 %.
    func enqueue(_ client: KilnClient) async throws -> [HostJob] {
        var rng = SplitMix64(seed: config.seed)
        var out: [HostJob] = []
        out.reserveCapacity(config.jobs)
        for chunk in stride(from: 0, to: config.jobs, by: 500) {
            var batch: [(EnqueueRequest, String, HostJob.Expect)] = []
            for _ in chunk..<min(config.jobs, chunk + 500) {
                var options = JobOptions(queue: HostsConfig.queue, timeout: .seconds(30), retries: 3, resultTTL: .seconds(3600))
                let roll = Int.random(in: 0..<100, using: &rng)
                switch roll {
                case 0..<50:
                    batch.append((EnqueueRequest(type: "chaos.sleep", payload: "{\"ms\":\(Int.random(in: 20...400, using: &rng))}", options: options), "chaos.sleep", .success))
                case 50..<70:
                    options.kind = .cpu
                    batch.append((EnqueueRequest(type: "chaos.spin", payload: "{\"n\":\(Int.random(in: 1_000_000...12_000_000, using: &rng))}", options: options), "chaos.spin", .success))
                case 70..<85:
                    options.retries = 2
                    batch.append((EnqueueRequest(type: "chaos.fail", payload: "{\"ms\":5}", options: options), "chaos.fail", .dead))
                default:
                    options.timeout = .milliseconds(150)
                    options.retries = 0
                    batch.append((EnqueueRequest(type: "chaos.sleep", payload: "{\"ms\":5000}", options: options), "chaos.timeout", .timedOut))
                }
            }
            let ids = try await client.enqueueBatch(batch.map(\.0))
            for (id, b) in zip(ids, batch) { out.append(HostJob(id: id, type: b.1, expect: b.2)) }
        }
        return out
    }

    // MARK: watching for final states

    /// Polls the status of every job not yet seen final (pipelined, 2,000 per round trip) until all
    /// are final, the deadline passes or a worker exits. A record that is gone is recorded as missing (the result
    /// TTL is an hour, so nothing expires during the run).
    func watch(_ client: KilnClient, _ ids: [String], deadline: ContinuousClock.Instant) async -> (final: Set<String>, missing: Set<String>, lastFinal: Int64) {
        var open = ids
        var final = Set<String>()
        var missing = Set<String>()
        var lastFinal: Int64 = 0
        while !open.isEmpty && ContinuousClock.now < deadline {
            var still: [String] = []
            for start in stride(from: 0, to: open.count, by: 2000) {
                let chunk = Array(open[start..<min(open.count, start + 2000)])
                guard let replies = try? await client.store.statuses(queue: HostsConfig.queue, ids: chunk) else {
                    still += chunk  // Redis did not answer: look again next round
                    continue
                }
                for (id, r) in zip(chunk, replies) {
                    if r == nil {
                        missing.insert(id)
                    } else if let s = r, JobStatus(rawValue: s)?.isFinal == true {
                        final.insert(id)
                        lastFinal = KilnClock.nowMs()
                    } else {
                        still.append(id)
                    }
                }
            }
            open = still
            if let dead = hosts.first(where: { $0.worker?.poll() != nil }) {
                problem("\(dead.name)'s worker exited (status \(dead.worker?.poll() ?? -1)) during the run; see \(dead.log)")
                break
            }
            let n = final.count
            locked { finalCount = n }
            if !open.isEmpty { try? await Task.sleep(for: .milliseconds(250)) }
        }
        return (final, missing, lastFinal)
    }

    func progress(_ total: Int) -> Double { Double(locked { finalCount }) / Double(max(1, total)) }

    /// The final records, pipelined.
    func fetchRecords(_ client: KilnClient, _ ids: [String]) async throws -> [String: JobRecord] {
        var out: [String: JobRecord] = [:]
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let chunk = Array(ids[start..<min(ids.count, start + 1000)])
            for (id, r) in zip(chunk, try await client.store.records(queue: HostsConfig.queue, ids: chunk)) { out[id] = r }
        }
        return out
    }
}
