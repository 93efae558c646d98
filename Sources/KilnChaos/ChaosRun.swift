import Foundation
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct ChaosConfig {
    var seconds: Int
    var jobs: Int
    var seed: UInt64
    var mix: ChaosMix = .standard
    var workers = 3
    /// The longest the jobs may take to drain after the chaos phase ends (a violation beyond it).
    var maxDrain: Duration = .seconds(30)
}

/// What the producer asked for, kept outside Redis.
struct Accepted: Sendable {
    enum Expect: String, Sendable { case success, dead, timedOut = "timed_out" }
    let id: String
    let type: String
    let expect: Expect
}

/// What the chaos driver did to whom, and when.
struct ChaosEvent: Sendable {
    enum Kind: String, Sendable { case kill9 = "kill -9", term = "SIGTERM", stop = "SIGSTOP", redisRestart = "redis restart", redisPause = "redis unreachable" }
    let kind: Kind
    let worker: String
    let start: Int64
    let end: Int64
}

struct CancelRequest: Sendable {
    let id: String
    let outcome: CancelOutcome
    let ms: Int64
}

/// The chaos run: Redis with AOF, several workers, a producer, and a driver that kills, stops and
/// restarts things; then the check.
final class ChaosRun: @unchecked Sendable {
    let config: ChaosConfig
    let dir: String
    let ledger: String
    var redis: LocalRedisServer!
    // Guarded by `lock`: workers by name, events, the accepted jobs and the cancels.
    private let lock = NSLock()
    private var workers: [String: SpawnedProcess] = [:]
    private var nextWorker = 0
    private(set) var events: [ChaosEvent] = []
    private(set) var accepted: [Accepted] = []
    private(set) var rejected = 0
    private(set) var cancels: [CancelRequest] = []
    private var producing = true

    init(config: ChaosConfig) {
        self.config = config
        dir = NSTemporaryDirectory() + "kiln-chaos-\(getpid())"
        ledger = dir + "/ledger"
    }


    func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func run() async throws -> Bool {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        print("kiln-chaos: \(config.seconds) s, \(config.jobs) jobs, mix \(config.mix.rawValue), \(config.workers) workers, seed \(config.seed), dir \(dir)")
        redis = try LocalRedisServer(extraArgs: ["--appendonly", "yes", "--appendfsync", "always"], dir: dir + "/redis")
        let baseline = try await keyNames()
        for _ in 0..<config.workers { try startWorker() }
        let client = try KilnClient(options: KilnClientOptions(
            redis: try RedisConfiguration(url: redis.url), retry: RetryPolicy(attempts: 100, backoff: .milliseconds(100))))
        defer { client.close() }

        let started = ContinuousClock.now
        let startedMs = KilnClock.nowMs()
        // The observer watches every accepted job from the first enqueue until all are final (or
        // the deadline), so each final record is seen while it exists, whatever order jobs end in.
        let observer = ChaosObserver(client: client, queue: "chaos")
        let observing = Task {
            await observer.observe(accepted: { self.locked { self.accepted } }, producing: { self.locked { self.producing } },
                                   deadline: started + .seconds(self.config.seconds) + self.config.maxDrain + .seconds(90))
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.produce(client)
                self.locked { self.producing = false }
            }
            group.addTask { await self.drive(client) }
            group.addTask { await self.cancelSome(client, until: started + .seconds(self.config.seconds)) }
        }
        let chaosEndMs = KilnClock.nowMs()
        print("kiln-chaos: chaos phase over after \(KilnDuration.format(ContinuousClock.now - started))")
        await observing.value
        print("kiln-chaos: observation over after \(KilnDuration.format(ContinuousClock.now - started))")
        let finals = observer.finals
        // Keep the workers (and their reapers) up while finished records expire, then list the keys.
        let ttlWait = ContinuousClock.now + .seconds(Self.resultTTLSeconds + 2)
        while ContinuousClock.now < ttlWait { try? await Task.sleep(for: .milliseconds(500)) }
        let keysAfter = try? await keyNames()
        stopAllWorkers()
        let check = ChaosCheck(run: self, finals: finals, ledger: Ledger.read(ledger), startedMs: startedMs, chaosEndMs: chaosEndMs,
                               keysBefore: baseline, keysAfter: keysAfter)
        let ok = check.report()
        let everysec = await EverysecProbe.run(dir: dir + "/probe")
        print("\nAOF trade-off (\(EverysecProbe.jobs) jobs enqueued, then redis-server kill -9 right after the last ack):")
        for line in everysec { print("  " + line) }
        print("  (kill -9 of the redis process keeps what it wrote to the kernel; everysec can lose up to about")
        print("   one second of acknowledged writes only when the machine itself dies, which this run cannot stage)")
        redis.stop(removeDir: false)
        if ok { try? FileManager.default.removeItem(atPath: dir) } else { print("kiln-chaos: kept \(dir) for inspection") }
        return ok
    }

    /// Result TTL of chaos jobs (CHAOS_TTL); the run waits this long at the end to count keys.
    static let resultTTLSeconds = Int(ProcessInfo.processInfo.environment["CHAOS_TTL"] ?? "") ?? 30

    // MARK: workers

    func startWorker() throws {
        let name = locked { () -> String in
            nextWorker += 1
            return "w\(nextWorker)"
        }
        var env = ProcessInfo.processInfo.environment
        env["KILN_REDIS_URL"] = redis.url
        env["CHAOS_LEDGER"] = ledger
        env["CHAOS_WORKER"] = name
        let p = try SpawnedProcess([ProcessPool.currentExecutable, "worker"], environment: env, stderr: "\(dir)/\(name).log")
        locked { workers[name] = p }
    }

    func randomWorker(_ rng: inout SplitMix64) -> (String, SpawnedProcess)? {
        locked { workers.sorted { $0.key < $1.key }.randomElement(using: &rng) }
    }

    func retire(_ name: String) { _ = locked { workers.removeValue(forKey: name) } }

    func record(_ e: ChaosEvent) { locked { events.append(e) } }

    func stopAllWorkers() {
        let all = locked { Array(workers.values) }
        for w in all { w.signal(SIGTERM) }
        for w in all {
            var n = 0
            while w.poll() == nil && n < 1000 { usleep(10_000); n += 1 }
            if w.poll() == nil { w.signal(SIGKILL) }
        }
    }

    /// Every key in the run's Redis, by name (SCAN).
    func keyNames() async throws -> Set<String> {
        let c = RedisConnection(configuration: try RedisConfiguration(url: redis.url))
        defer { c.close() }
        return try await KilnStore(prefix: "kiln", connection: c).allKeyNames()
    }

    // MARK: producer

    func produce(_ client: KilnClient) async {
        var rng = SplitMix64(seed: config.seed)
        let window = Double(config.seconds) * 0.7
        let pause = Duration.milliseconds(Int64(window * 1000 / Double(max(1, config.jobs))))
        let ttl = Duration.seconds(Self.resultTTLSeconds)
        for _ in 0..<config.jobs {
            let pick = config.mix.pick(&rng, queue: "chaos", ttl: ttl)
            let (type, payload, expect, options) = (pick.type, pick.payload, pick.expect, pick.options)
            do {
                let job = try await client.enqueue(type, json: payload, options: options)
                locked { accepted.append(Accepted(id: job.id, type: type, expect: expect)) }
            } catch {
                locked { rejected += 1 }
            }
            try? await Task.sleep(for: pause)
        }
    }

    // MARK: chaos driver

    func drive(_ client: KilnClient) async {
        var rng = SplitMix64(seed: config.seed ^ 0xC4A0_5000)
        let total = Double(config.seconds)
        let start = ContinuousClock.now
        func at(_ fraction: Double) -> ContinuousClock.Instant { start + .milliseconds(Int64(total * fraction * 1000)) }
        var plan: [(ContinuousClock.Instant, String)] = [
            (at(0.25), "term"), (at(0.35), "stop"), (at(0.5), "redis-restart"), (at(0.65), "redis-pause"),
        ]
        var t = 0.08
        while t < 0.85 {
            plan.append((at(t), "kill"))
            t += max(0.03, 5.0 / total)
        }
        plan.sort { $0.0 < $1.0 }
        for (when, what) in plan {
            try? await Task.sleep(until: when, clock: .continuous)
            let t0 = KilnClock.nowMs()
            switch what {
            case "kill":
                guard let (name, p) = randomWorker(&rng) else { continue }
                p.signal(SIGKILL)
                _ = await p.wait(timeout: .seconds(5))
                retire(name)
                record(ChaosEvent(kind: .kill9, worker: name, start: t0, end: KilnClock.nowMs()))
                try? startWorker()
            case "term":
                guard let (name, p) = randomWorker(&rng) else { continue }
                p.signal(SIGTERM)
                retire(name)
                try? startWorker()
                _ = await p.wait(timeout: .seconds(20))
                record(ChaosEvent(kind: .term, worker: name, start: t0, end: KilnClock.nowMs()))
            case "stop":
                guard let (name, p) = randomWorker(&rng) else { continue }
                p.signal(SIGSTOP)
                try? await Task.sleep(for: .seconds(5))  // longer than the 2 s lease
                p.signal(SIGCONT)
                record(ChaosEvent(kind: .stop, worker: name, start: t0, end: KilnClock.nowMs()))
            case "redis-restart":
                redis.process.signal(SIGTERM)  // a clean shutdown; it comes back from the AOF
                _ = await redis.process.wait(timeout: .seconds(20))
                if let again = try? LocalRedisServer(extraArgs: ["--appendonly", "yes", "--appendfsync", "always"], dir: redis.dir, port: redis.port) {
                    redis = again
                }
                record(ChaosEvent(kind: .redisRestart, worker: "-", start: t0, end: KilnClock.nowMs()))
            default:  // redis-pause: unreachable for longer than the workers' 2 s command timeout
                redis.process.signal(SIGSTOP)
                try? await Task.sleep(for: .seconds(4))
                redis.process.signal(SIGCONT)
                record(ChaosEvent(kind: .redisPause, worker: "-", start: t0, end: KilnClock.nowMs()))
            }
        }
    }

    /// Cancels a random job now and then (queued or running, whatever it is at that moment).
    func cancelSome(_ client: KilnClient, until: ContinuousClock.Instant) async {
        var rng = SplitMix64(seed: config.seed ^ 0xCA_4CE1)
        while ContinuousClock.now < until {
            try? await Task.sleep(for: .milliseconds(Int64.random(in: 300...900, using: &rng)))
            let candidates = locked { accepted.suffix(40) }
            guard let pick = candidates.randomElement(using: &rng) else { continue }
            let ms = KilnClock.nowMs()
            if let outcome = try? await client.cancel(pick.id, queue: "chaos", wait: .zero) {
                locked { cancels.append(CancelRequest(id: pick.id, outcome: outcome, ms: ms)) }
            }
        }
    }
}
