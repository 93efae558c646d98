import Foundation
import Kiln
import Logging
import Testing

@testable import KilnWorker

@Suite struct PoolFrameTests {
    let job = PoolJob(id: "j-1", type: "thumb.render", queue: "média", payload: #"{"w":640,"s":"é✓"}"#,
                      attempt: 2, maxAttempts: 5, timeoutMs: 30_000)

    /// The payload of a complete frame, checking its length prefix.
    func payload(_ frame: [UInt8]) throws -> [UInt8] {
        let n = try PoolFrame.payloadLength(header: frame.prefix(4))
        #expect(n == frame.count - 4)
        return Array(frame.dropFirst(4))
    }

    @Test func jobRoundTrip() throws {
        #expect(try PoolFrame.decodeJob(payload(PoolFrame.encode(job))) == job)
        let empty = PoolJob(id: "", type: "", queue: "", payload: "", attempt: 0, maxAttempts: 0, timeoutMs: -1)
        #expect(try PoolFrame.decodeJob(payload(PoolFrame.encode(empty))) == empty)
    }

    @Test(arguments: [
        PoolOutcome.succeeded(#"{"ok":true}"#), .succeeded(""),
        .failed(type: "bad_payload", message: "missing field 'w' ✗", retryable: false),
        .failed(type: "error", message: "", retryable: true),
        .crashed("worker process crashed: signal 11"), .killed, .dropped,
    ])
    func outcomeRoundTrip(_ outcome: PoolOutcome) throws {
        #expect(try PoolFrame.decodeOutcome(payload(PoolFrame.encode(outcome))) == outcome)
    }

    @Test func dropRequestRoundTrip() throws {
        let drop = PoolRequest.drop(id: job.id, queue: job.queue)
        #expect(try PoolFrame.decodeRequest(payload(PoolFrame.encode(drop))) == drop)
        #expect(try PoolFrame.decodeRequest(payload(PoolFrame.encode(job))) == .run(job))
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeJob(payload(PoolFrame.encode(drop))) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeRequest([7]) }
    }

    /// The child's view of its pipe: a drop already behind the job it takes withdraws it; a drop
    /// that comes after it started is stale and skipped.
    @Test func inboxSeesADropBehindTheJob() throws {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let other = PoolJob(id: "j-2", type: "t", queue: "q", payload: "{}", attempt: 1, maxAttempts: 1, timeoutMs: 1)
        for frame in [PoolFrame.encode(job), PoolFrame.encode(.drop(id: job.id, queue: job.queue)), PoolFrame.encode(other)] {
            try PoolFrameIO.writeAll(fds[1], frame)
        }
        var inbox = PoolChildInbox(fd: fds[0])
        #expect(try inbox.next() == .run(job))
        #expect(try inbox.takeDrop(for: job))
        #expect(try inbox.next() == .run(other))
        #expect(try !inbox.takeDrop(for: other))
        try PoolFrameIO.writeAll(fds[1], PoolFrame.encode(.drop(id: other.id, queue: other.queue)))
        close(fds[1])
        #expect(try inbox.next() == .drop(id: other.id, queue: other.queue))  // stale: the child skips it
        #expect(try inbox.next() == nil)
    }

    @Test func malformedPayloadsAreRejected() throws {
        let full = try payload(PoolFrame.encode(job))
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeJob(Array(full.dropLast())) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeJob(full + [0]) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeOutcome([9]) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeOutcome([]) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.decodeOutcome([0, 5, 0, 0, 0, 0xff, 0xfe, 0x41, 0x41, 0x41]) }
        #expect(throws: PoolFrameError.self) { try PoolFrame.payloadLength(header: [0xff, 0xff, 0xff, 0xff]) }
    }

    @Test func bufferReassemblesFramesFedByteByByte() throws {
        let outcomes: [PoolOutcome] = [.succeeded("1"), .failed(type: "t", message: "m", retryable: true)]
        let stream = outcomes.flatMap { PoolFrame.encode($0) }
        var buffer = PoolFrameBuffer()
        var decoded: [PoolOutcome] = []
        for byte in stream {
            [byte].withUnsafeBytes { buffer.append($0) }
            if let p = try buffer.nextPayload() { decoded.append(try PoolFrame.decodeOutcome(p)) }
        }
        #expect(decoded == outcomes)
        #expect(!buffer.hasPartialFrame)
    }

    @Test func exitStatusDescriptions() {
        #expect(PoolExitStatus(waitStatus: 11).crashReason == "worker process crashed: signal 11")
        #expect(PoolExitStatus(waitStatus: 3 << 8).crashReason == "worker process exited with status 3")
    }
}

@Suite struct PoolChildTests {
    let logger = Logger(label: "test")

    func job(_ type: String, _ payload: String = "{}") -> PoolJob {
        PoolJob(id: "j", type: type, queue: "q", payload: payload, attempt: 1, maxAttempts: 3, timeoutMs: 1000)
    }

    @Test func runsHandlersAndMapsErrors() {
        struct Boom: Error {}
        var registry = JobRegistry()
        registry.cpuRaw("double") { p, ctx in "\(Int(p)! * 2)" }
        registry.cpuRaw("refuse") { _, _ in throw JobFailure("no", type: "refused", retryable: false) }
        registry.cpuRaw("boom") { _, _ in throw Boom() }
        registry.ioRaw("later") { p, _ in try await Task.sleep(for: .milliseconds(10)); return p }
        #expect(PoolChild.run(job("double", "21"), registry: registry, logger: logger) == .succeeded("42"))
        #expect(PoolChild.run(job("later", "[1]"), registry: registry, logger: logger) == .succeeded("[1]"))
        #expect(PoolChild.run(job("refuse"), registry: registry, logger: logger)
                == .failed(type: "refused", message: "no", retryable: false))
        #expect(PoolChild.run(job("boom"), registry: registry, logger: logger)
                == .failed(type: "error", message: "Boom()", retryable: true))
        #expect(PoolChild.run(job("nope"), registry: registry, logger: logger)
                == .failed(type: "unknown_type", message: "no handler registered for job type 'nope'", retryable: false))
    }
}

/// The pool's supervision, with shell scripts standing in for child processes.
@Suite(.serialized) struct ProcessPoolSupervisionTests {
    let logger = Logger(label: "test")
    let job = PoolJob(id: "j", type: "t", queue: "q", payload: "{}", attempt: 1, maxAttempts: 1, timeoutMs: 1000)

    /// Writes an executable `/bin/sh` script and returns its path.
    func script(_ body: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-pool-\(UUID().uuidString).sh").path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    func withPool<R>(_ executable: String, niceness: Int = 0, _ body: (ProcessPool) async throws -> R) async throws -> R {
        let pool = ProcessPool(size: 1, executable: executable, logger: logger, killGrace: .milliseconds(300), niceness: niceness)
        let run = Task { try await pool.run() }
        defer { run.cancel() }
        let result = try await body(pool)
        run.cancel()
        _ = await run.result
        #expect(pool.childPIDs().isEmpty)
        #expect(await pool.execute(job) == .crashed("worker process pool is shut down"))
        return result
    }

    @Test func speaksTheProtocolWithFilteredEnvironment() async throws {
        let envFile = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-env-\(UUID().uuidString)").path
        // Reads one byte of the request, answers `.succeeded("1")`, then waits for more.
        let child = try script("""
            env > '\(envFile)'
            head -c 1 <&3 >/dev/null
            printf '\\006\\000\\000\\000\\000\\001\\000\\000\\000\\061' >&4
            exec sleep 30
            """)
        defer { for f in [child, envFile] { try? FileManager.default.removeItem(atPath: f) } }
        setenv("KILN_TEST_SECRET", "x", 1)
        setenv("REDIS_TEST_URL", "x", 1)
        let outcome = try await withPool(child) { await $0.execute(job) }
        #expect(outcome == .succeeded("1"))
        let env = try String(contentsOfFile: envFile, encoding: .utf8).split(separator: "\n")
        #expect(env.contains("KILN_POOL_CHILD=1"))
        #expect(env.contains("KILN_POOL_PARENT=\(getpid())"))
        #expect(!env.contains { $0.hasPrefix("KILN_TEST_SECRET") || $0.hasPrefix("REDIS_TEST_URL") })
    }

    /// The nice value (field 19 of /proc/PID/stat, after the parenthesised command name).
    func niceValue(_ pid: pid_t) throws -> Int? {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 16 ? Int(fields[16]) : nil
    }

    @Test func childrenRunNicerThanTheWorker() async throws {
        let child = try script("exec sleep 30")
        defer { try? FileManager.default.removeItem(atPath: child) }
        let own = try #require(try niceValue(getpid()))
        let seen = try await withPool(child, niceness: 7) { pool -> Int? in
            try await eventually("the pool did not start its child") { !pool.childPIDs().isEmpty }
            let pid = try #require(pool.childPIDs().first)
            return try niceValue(pid)
        }
        #expect(seen == min(19, own + 7))
    }

    @Test func childCrashIsReportedAndRespawned() async throws {
        let child = try script("head -c 1 <&3 >/dev/null; kill -SEGV $$")
        defer { try? FileManager.default.removeItem(atPath: child) }
        try await withPool(child) { pool in
            #expect(await pool.execute(job) == .crashed("worker process crashed: signal 11"))
            #expect(await pool.execute(job) == .crashed("worker process crashed: signal 11"))
        }
    }

    /// A child that dies under its job is the job's fault: the slot gets a new child at once, so
    /// a stream of crashing jobs cannot slow the pool down (the old backoff made 20 crashes take
    /// over a minute: 50 ms doubling to 5 s between respawns).
    @Test func jobCrashesRespawnWithoutBackoff() async throws {
        let child = try script("head -c 1 <&3 >/dev/null; kill -ABRT $$")
        defer { try? FileManager.default.removeItem(atPath: child) }
        let clock = ContinuousClock()
        let elapsed = try await withPool(child) { pool in
            try await eventually("the pool did not start its child") { !pool.childPIDs().isEmpty }
            let start = clock.now
            for _ in 0..<20 { #expect(await pool.execute(job) == .crashed("worker process crashed: signal 6")) }
            return clock.now - start
        }
        #expect(elapsed < .seconds(10), "20 crashing jobs took \(elapsed)")
    }

    /// A child that dies idle (before taking any job) is the slot's problem: respawns back off.
    @Test func childrenDyingIdleBackOff() async throws {
        let spawns = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-spawns-\(UUID().uuidString)").path
        let child = try script("echo x >> '\(spawns)'; exit 3")
        defer { for f in [child, spawns] { try? FileManager.default.removeItem(atPath: f) } }
        func count() -> Int { ((try? String(contentsOfFile: spawns, encoding: .utf8)) ?? "").split(separator: "\n").count }
        let clock = ContinuousClock()
        let start = clock.now
        let elapsed = try await withPool(child) { _ in
            try await eventually("five spawns", timeout: .seconds(30)) { count() >= 5 }
            return clock.now - start
        }
        // Four waits between five spawns: at least 50 + 100 + 200 + 400 ms.
        #expect(elapsed >= .milliseconds(750), "five idle deaths respawned within \(elapsed)")
    }

    @Test func respawnPolicy() {
        #expect(ProcessPool.respawnDelay(failures: 0) == .zero)
        #expect(ProcessPool.respawnDelay(failures: 1) == .milliseconds(50))
        #expect(ProcessPool.respawnDelay(failures: 4) == .milliseconds(400))
        #expect(ProcessPool.respawnDelay(failures: 30) == .seconds(5))
        // Died under a job, or killed for a timeout or cancel: never counts.
        #expect(ProcessPool.failuresAfter(7, unhealthy: false, servedJob: false, lived: .milliseconds(5)) == 0)
        // Died idle or before its first job, soon after it started: the backoff climbs.
        #expect(ProcessPool.failuresAfter(2, unhealthy: true, servedJob: false, lived: .milliseconds(5)) == 3)
        // ... but a healthy run first (a job done, or a second up) starts it over.
        #expect(ProcessPool.failuresAfter(6, unhealthy: true, servedJob: true, lived: .milliseconds(5)) == 1)
        #expect(ProcessPool.failuresAfter(6, unhealthy: true, servedJob: false, lived: .seconds(2)) == 1)
    }

    @Test func cancellationKillsTheChild() async throws {
        let child = try script("exec sleep 30")
        defer { try? FileManager.default.removeItem(atPath: child) }
        try await withPool(child) { pool in
            let task = Task { await pool.execute(job) }
            try await Task.sleep(for: .milliseconds(200))
            let victim = try #require(pool.childPIDs().first)
            let clock = ContinuousClock()
            let start = clock.now
            task.cancel()
            #expect(await task.value == .killed)
            #expect(clock.now - start < .milliseconds(250))
            #expect(kill(victim, 0) != 0)  // reaped
            try await Task.sleep(for: .milliseconds(200))
            #expect(pool.childPIDs().count == 1 && pool.childPIDs() != [victim])
        }
    }
}
