import Foundation
import Kiln
import KilnRedis
import KilnTestSupport
import KilnWorker
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The bench's own Redis, an admin connection to it that counts the commands the bench itself
/// sends (so they can be left out of the per-job counts), and helpers to run `kiln` processes.
final class BenchEnv: Sendable {
    let redis: LocalRedisServer
    let admin: RedisConnection
    let kilnPath: String
    let dir: String
    private let own = Mutex<[String: Int]>([:])

    init() throws {
        // The release `kiln` next to this binary (BENCH_KILN to use another one).
        let exe = ProcessPool.currentExecutable
        kilnPath = ProcessInfo.processInfo.environment["BENCH_KILN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (exe as NSString).deletingLastPathComponent + "/kiln"
        redis = try LocalRedisServer(dir: NSTemporaryDirectory() + "kiln-bench-\(getpid())")
        dir = redis.dir
        admin = RedisConnection(configuration: try RedisConfiguration(url: redis.url))
    }

    func stop() {
        admin.close()
        redis.stop()
    }

    // MARK: commands the bench sends itself

    private func count(_ commands: [[String]]) {
        own.withLock { m in for c in commands { m[(c.first ?? "").lowercased(), default: 0] += 1 } }
    }

    @discardableResult
    func send(_ args: [String]) async throws -> RedisValue {
        count([args])
        return try await admin.send(args)
    }

    func pipeline(_ cmds: [[String]]) async throws -> [RedisValue] {
        count(cmds)
        return try await admin.pipeline(cmds)
    }

    func flushAll() async throws { try await send(["FLUSHALL"]) }

    // MARK: INFO commandstats

    /// Calls per command name (lower case), as Redis counts them: commands run inside scripts count too.
    struct CommandStats: Sendable {
        var calls: [String: Int]
        var own: [String: Int]
    }

    func commandStats() async throws -> CommandStats {
        let text = try await admin.send(["INFO", "commandstats"]).string ?? ""
        var calls: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let body = line.dropFirst("cmdstat_".count)
            guard let colon = body.firstIndex(of: ":") else { continue }
            let name = String(body[..<colon])
            for part in body[body.index(after: colon)...].split(separator: ",") where part.hasPrefix("calls=") {
                calls[name] = Int(part.dropFirst(6)) ?? 0
            }
        }
        return CommandStats(calls: calls, own: own.withLock { $0 })
    }

    /// Calls per job between two snapshots, leaving out INFO and what the bench sent itself.
    /// Keys: command names and `total`.
    static func perJob(before: CommandStats, after: CommandStats, jobs: Int) -> [(String, Double)] {
        var diff: [String: Int] = [:]
        for (k, v) in after.calls where k != "info" {
            let mine = (after.own[k] ?? 0) - (before.own[k] ?? 0)
            let d = v - (before.calls[k] ?? 0) - mine
            if d > 0 { diff[k] = d }
        }
        let n = Double(max(1, jobs))
        let total = Double(diff.values.reduce(0, +)) / n
        return [("total", total)] + diff.sorted { $0.value > $1.value }.map { ($0.key, Double($0.value) / n) }
    }

    // MARK: workers

    /// Starts `kiln worker` against the bench's Redis with the given key prefix.
    func requireKiln() throws {
        guard FileManager.default.isExecutableFile(atPath: kilnPath) else {
            throw BenchError("no kiln binary at \(kilnPath); build it first: swift build -c release --product kiln")
        }
    }

    func startWorker(prefix: String, concurrency: Int, processes: Int, name: String, extraArgs: [String] = []) throws -> SpawnedProcess {
        try requireKiln()
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KILN_") && !$0.key.hasPrefix("REDIS") }
        env["KILN_REDIS_URL"] = redis.url
        env["KILN_PREFIX"] = prefix
        env["KILN_LOG_LEVEL"] = "warning"
        // BENCH_METRICS=counting: workers record Kiln's metrics into an in-process backend
        // (default: none, the no-op backend).
        if let m = ProcessInfo.processInfo.environment["BENCH_METRICS"], !m.isEmpty { env["KILN_BENCH_METRICS"] = m }
        return try SpawnedProcess(
            [kilnPath, "worker", "--processes", String(processes), "--concurrency", String(concurrency),
             "--shutdown-grace", "5s", "--name", name] + extraArgs,
            environment: env, stderr: "\(dir)/\(name).log")
    }

    /// SIGTERM, then SIGKILL after 15 s. Returns the exit code.
    @discardableResult
    func stopWorker(_ p: SpawnedProcess) async -> Int32? {
        p.signal(SIGTERM)
        if let code = await p.wait(timeout: .seconds(15)) { return code }
        p.signal(SIGKILL)
        return await p.wait(timeout: .seconds(5))
    }

    func workerLogTail(_ name: String, _ n: Int = 3) -> String {
        let text = (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(n).map { String($0.prefix(200)) }.joined(separator: " | ")
    }

    /// A field of /proc/PID/status in kB (VmHWM, VmRSS), as MB.
    static func memoryMB(pid: pid_t, field: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.split(separator: " ").compactMap { Double($0) }.first
            return digits.map { $0 / 1024 }
        }
        return nil
    }

    // MARK: CPU time

    /// User + system CPU seconds of a process (from /proc/PID/stat), plus those of its live
    /// children when `children` (a worker's pool processes).
    static func cpuSeconds(pid: pid_t, children: Bool = false) -> Double {
        func one(_ p: String) -> (ppid: Int32, cpu: Double)? {
            guard let text = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { return nil }
            let f = text[text.index(after: close)...].split(separator: " ")
            // After "pid (comm)": state ppid … utime is field 14, stime 15 (1-based in the whole line).
            guard f.count > 13, let ppid = Int32(f[1]), let u = Double(f[11]), let s = Double(f[12]) else { return nil }
            return (ppid, (u + s) / Double(sysconf(Int32(_SC_CLK_TCK))))
        }
        var total = one(String(pid))?.cpu ?? 0
        if children, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") {
            for e in entries where e.first?.isNumber == true {
                if let c = one(e), c.ppid == pid { total += c.cpu }
            }
        }
        return total
    }

    /// Busy CPU seconds of the whole machine so far (all cores, from /proc/stat).
    static func machineCPU() -> (busy: Double, idle: Double) {
        let text = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return (0, 0) }
        let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard v.count >= 5 else { return (0, 0) }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let idle = v[3] + v[4]
        return ((v.prefix(8).reduce(0, +) - idle) / hz, idle / hz)
    }

    // MARK: waiting for a queue to empty

    /// Waits until nothing is pending, running or scheduled for retry in `queue` (polling every
    /// 20 ms through the admin connection, whose commands are not counted against the jobs).
    func waitDrained(prefix: String, queue: String, expected: Int, timeout: Duration, worker: SpawnedProcess?) async throws {
        let deadline = ContinuousClock.now + timeout
        let store = KilnStore(prefix: prefix, connection: admin)
        // Every job must have left the ready lists at least once: check the records' count of
        // finished jobs only at the end (the caller reads them).
        while true {
            count([["LLEN"], ["LLEN"], ["ZCARD"], ["ZCARD"], ["ZCARD"]])
            let c = try await store.counts(queue: queue)
            let r = [c.queued, c.running, c.retrying]
            if r.allSatisfy({ $0 == 0 }) { return }
            if let worker, let code = worker.poll() {
                throw BenchError("the worker exited (code \(code)) with \(r) jobs pending/running/scheduled")
            }
            if ContinuousClock.now >= deadline {
                throw BenchError("not drained after \(timeout): pending, running, scheduled = \(r)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Reads status, enqueued_at, started_at, finished_at of every job (pipelined, 2000 at a time).
    struct Times: Sendable {
        var succeeded = 0
        var other: [String: Int] = [:]
        var firstStart = Int64.max
        var lastFinish = Int64.min
        var firstEnqueue = Int64.max
        var rows: [(enqueued: Int64, started: Int64, finished: Int64)] = []
        var spanMs: Int64 { max(1, lastFinish - firstStart) }
    }

    func readTimes(prefix: String, queue: String, ids: [String]) async throws -> Times {
        var t = Times()
        t.rows.reserveCapacity(ids.count)
        // `records` runs the get script once per 500 ids (one HMGET inside each).
        count(stride(from: 0, to: ids.count, by: 500).flatMap { _ in [["EVALSHA"], ["HMGET"]] })
        for rec in try await KilnStore(prefix: prefix, connection: admin).records(queue: queue, ids: ids) {
            let status = rec?.statusText ?? "missing"
            if status == "succeeded" { t.succeeded += 1 } else { t.other[status, default: 0] += 1 }
            guard let rec, let e = rec.enqueuedAt, let s = rec.startedAt, let fin = rec.finishedAt else { continue }
            t.firstStart = min(t.firstStart, s)
            t.lastFinish = max(t.lastFinish, fin)
            t.firstEnqueue = min(t.firstEnqueue, e)
            t.rows.append((e, s, fin))
        }
        return t
    }

    // MARK: timing a short-lived process

    /// Runs `argv` to completion and returns its exit code, the time from spawn to exit, and its
    /// stdout. Waits with a blocking waitpid (exact to the microsecond, unlike a polling wait).
    static func runTimed(_ argv: [String], environment: [String: String], stdoutPath: String) throws -> (code: Int32, elapsed: Duration, stdout: String) {
        unlink(stdoutPath)
        let truncate = O_WRONLY | O_CREAT | O_TRUNC
        let start = ContinuousClock.now
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(argv, environment: environment.map { "\($0.key)=\($0.value)" },
                                           fileActions: [.open(0, path: "/dev/null", flags: O_RDONLY),
                                                         .open(1, path: stdoutPath, flags: truncate, mode: 0o644),
                                                         .open(2, path: stdoutPath + ".err", flags: truncate, mode: 0o644)])
        } catch { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(error.code)))") }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let elapsed = ContinuousClock.now - start
        let code = ProcessSpawner.exitCode(waitStatus: st)
        let out = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        return (code, elapsed, out)
    }

    // MARK: redis-benchmark

    /// Runs `redis-benchmark -t lpush,rpop -q` against the bench's Redis; returns rate and p50 per command.
    func redisBenchmark(requests: Int, pipeline: Int?) async throws -> (command: String, results: [String: (Double, Double?)]) {
        let path = ["/usr/bin/redis-benchmark", "/usr/local/bin/redis-benchmark"].first(where: FileManager.default.isExecutableFile)
        guard let path else { throw BenchError("redis-benchmark is not installed (apt-get install redis-tools; make bench does it)") }
        var args = [path, "-h", "127.0.0.1", "-p", String(redis.port), "-t", "lpush,rpop", "-n", String(requests), "-q"]
        if let pipeline { args += ["-P", String(pipeline)] }
        let out = "\(dir)/redis-benchmark-\(pipeline ?? 1).txt"
        let p = try SpawnedProcess(args, environment: [:], stdout: out)
        guard let code = await p.wait(timeout: .seconds(300)) else {
            p.signal(SIGKILL)
            throw BenchError("redis-benchmark did not finish in 300 s")
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        var results: [String: (Double, Double?)] = [:]
        // -q prints progress lines ending in \r and one final line per test:
        // "LPUSH: 123456.79 requests per second, p50=0.215 msec"
        for line in text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }) where line.contains("requests per second") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            let rest = parts[1].trimmingCharacters(in: .whitespaces)
            guard let rps = Double(rest.split(separator: " ").first ?? "") else { continue }
            var p50: Double?
            if let r = rest.range(of: "p50=") { p50 = Double(rest[r.upperBound...].split(separator: " ").first ?? "") }
            results[name] = (rps, p50)
        }
        if results.isEmpty { throw BenchError("redis-benchmark (exit \(code)) printed no results: \(text.suffix(200))") }
        return ((["redis-benchmark"] + args.dropFirst()).joined(separator: " "), results)
    }
}
