import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The least-privilege Redis ACL users of `docs/security.md`, verified end to end on a dedicated
/// redis-server whose default user is disabled: a worker and the `kiln` producer commands run the
/// whole job life cycle (run, pool, retry, dead-letter, cancel, caller-chosen ids, a long wait,
/// lease renewal, the sweep, hand-back) as those
/// users without a single ACL denial, and each user is refused what it must not do.
@Suite(.serialized) struct ACLTests {
    /// The rules after `ACL SETUSER kiln-producer reset on >PASSWORD`, exactly as in docs/security.md.
    static let producerRules = "resetchannels &kiln:cancel &kiln:{*}:done -@all +ping +subscribe +script|load +evalsha +get +set +exists +sadd +smembers +hexists +llen +zcard +zrange +hmget +hset +rpush +lrem +zrem +zadd +publish ~kiln:queues ~kiln:version ~kiln:{*}:jobs ~kiln:{*}:ready:* ~kiln:{*}:later ~kiln:{*}:expiry %R~kiln:{*}:leases %R~kiln:{*}:dead"
    /// The rules after `ACL SETUSER kiln-worker reset on >PASSWORD`, exactly as in docs/security.md.
    static let workerRules = "resetchannels &kiln:cancel &kiln:{*}:done -@all +ping +subscribe +publish +script|load +evalsha +get +set +exists +blmove +lpop +lpush +rpush +hmget +hset +hdel +hscan +zadd +zrem +zrange +zrangebyscore +zcard +zscore +sadd +srem +scard +smismember +time %R~kiln:queues ~kiln:version ~kiln:{*}:jobs ~kiln:{*}:ready:* ~kiln:{*}:leases ~kiln:{*}:later ~kiln:{*}:dead ~kiln:{*}:expiry ~kiln:{*}:revived"
    /// The admin user the doc tells operators to create before disabling `default`.
    static let adminRules = "on >ADMIN_PASSWORD ~* &* +@all"
    /// Key names of the prefix `kiln`, from the store's key builder.
    static let K = KeySchema(prefix: "kiln")

    static let producerPassword = "producer-secret-1"
    static let workerPassword = "worker-secret-2"
    static let adminPassword = "admin-secret-3"

    /// The repository root, from this file's path (Tests/KilnTests/ACLTests.swift).
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    // MARK: the doc and the test agree

    @Test func securityDocShowsExactlyTheseRules() throws {
        let doc = try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/security.md"), encoding: .utf8)
        for line in [
            "ACL SETUSER admin \(Self.adminRules)",
            "ACL SETUSER kiln-producer reset on >PRODUCER_PASSWORD \(Self.producerRules)",
            "ACL SETUSER kiln-worker reset on >WORKER_PASSWORD \(Self.workerRules)",
            "ACL SETUSER default off",
        ] {
            #expect(doc.contains(line), "docs/security.md does not contain the line:\n\(line)")
        }
    }

    // MARK: a server with the users

    /// A dedicated redis-server with the admin, producer and worker users of docs/security.md and
    /// the default user disabled.
    struct ACLServer {
        let redis: TestRedis
        /// A connection as the admin user, for inspection.
        let admin: RedisConnection

        func url(_ user: String, _ password: String) -> String { "redis://\(user):\(password)@127.0.0.1:\(redis.port)" }
        var producerURL: String { url("kiln-producer", ACLTests.producerPassword) }
        var workerURL: String { url("kiln-worker", ACLTests.workerPassword) }

        /// Runs `kiln ARGS...` as the producer user.
        func kiln(_ args: String...) async throws -> KilnCLI.Result {
            let p = try ChildProcess([KilnBinary.path] + args, environment: ["KILN_REDIS_URL": producerURL, "KILN_PREFIX": "kiln"])
            let code = try await p.wait(timeout: .seconds(30))
            return KilnCLI.Result(code: code, stdout: p.stdout, stderr: p.stderr)
        }

        /// The store on the admin connection, for reading records (the `get` script) and planting them.
        var adminStore: KilnStore { KilnStore(prefix: "kiln", connection: admin) }

        func status(_ id: String) async throws -> String? {
            try await adminStore.record(queue: "default", id: id)?.statusText
        }

        /// Every ACL denial the server logged since the last reset.
        func aclLog() async throws -> [RedisValue] { try await admin.send(["ACL", "LOG"]).array }
    }

    /// Starts the server, sets the users up as the default user, disables it, runs `body`, and
    /// stops the server (also when `body` throws).
    func withACLServer(_ body: (ACLServer) async throws -> Void) async throws {
        let redis = try TestRedis()
        defer { redis.server.stop() }
        let setup = RedisConnection(configuration: redis.configuration)
        func rules(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }
        _ = try await setup.send(["ACL", "SETUSER", "admin"] + rules(Self.adminRules.replacingOccurrences(of: "ADMIN_PASSWORD", with: Self.adminPassword)))
        _ = try await setup.send(["ACL", "SETUSER", "kiln-producer", "reset", "on", ">" + Self.producerPassword] + rules(Self.producerRules))
        _ = try await setup.send(["ACL", "SETUSER", "kiln-worker", "reset", "on", ">" + Self.workerPassword] + rules(Self.workerRules))
        _ = try await setup.send(["ACL", "SETUSER", "default", "off"])
        setup.close()
        let admin = RedisConnection(configuration: try RedisConfiguration(url: "redis://admin:\(Self.adminPassword)@127.0.0.1:\(redis.port)"))
        defer { admin.close() }
        try await body(ACLServer(redis: redis, admin: admin))
    }

    /// Starts `kiln worker` as the worker user (one pool process, 2 s lease so leases are renewed
    /// several times, short grace and retry backoff), runs `body`, and stops the worker with
    /// SIGTERM (also when `body` throws).
    func withWorker(_ server: ACLServer, _ body: (ChildProcess) async throws -> Void) async throws {
        let worker = try ChildProcess(
            [KilnBinary.path, "worker", "--processes", "1", "--lease", "2s", "--shutdown-grace", "300ms",
             "--retry-backoff", "50ms", "--name", "acl-worker"],
            environment: ["KILN_REDIS_URL": server.workerURL, "KILN_PREFIX": "kiln", "KILN_QUEUES": "default,slow"])
        do {
            try await eventually("worker did not start: \(worker.output.suffix(1500))", timeout: .seconds(20)) {
                if worker.poll() != nil { throw TestFailure("worker exited early: \(worker.output.suffix(1500))") }
                return worker.stderr.contains("worker started")
            }
            try await body(worker)
        } catch {
            if worker.poll() == nil {
                worker.signal(SIGTERM)
                _ = try? await worker.wait(timeout: .seconds(10))
            }
            throw error
        }
        if worker.poll() == nil {
            worker.signal(SIGTERM)
            _ = try await worker.wait(timeout: .seconds(20))
        }
    }

    /// Expects `body` to be refused by an ACL (NOPERM), not to fail for another reason.
    func expectDenied(_ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what): was allowed, expected NOPERM")
        } catch {
            let text = (error as? RedisError)?.message ?? "\(error)"
            #expect(text.contains("NOPERM") || text.contains("no permissions"), "\(what): failed, but not with NOPERM: \(text)")
        }
    }

    // MARK: the whole flow as the least-privilege users

    @Test func fullFlowRunsWithOnlyTheDocumentedPermissions() async throws {
        try await withACLServer { server in
            // Nobody gets in without a user any more.
            let anonymous = RedisConnection(configuration: server.redis.configuration)
            await #expect(throws: RedisError.self, "the default user should be disabled") { _ = try await anonymous.send(["PING"]) }
            anonymous.close()

            try await withWorker(server) { worker in
                // A wait longer than the subscriber connection's keep-alive (a PING after 15 s
                // without traffic), on a queue of its own so nothing else wakes that connection.
                let longWait = try ChildProcess([KilnBinary.path, "enqueue", "sleep", #"{"ms":17000}"#, "--queue", "slow", "--wait", "--wait-timeout", "40s"],
                                                environment: ["KILN_REDIS_URL": server.producerURL, "KILN_PREFIX": "kiln"])
                defer { if longWait.poll() == nil { longWait.signal(SIGKILL) } }

                // A result kept 1 ms, whose id is in Q:revived (as after `kiln retry`): the reaper
                // reads its record before deleting it through Q:expiry, then clears the id.
                _ = try await server.admin.send(["SADD", ACLTests.K.revived("default"), "brief-1"])
                let brief = try await server.kiln("enqueue", "echo", "1", "--id", "brief-1", "--result-ttl", "1ms", "--wait", "--wait-timeout", "20s")
                #expect(brief.code == 0 && brief.line == "1", "enqueue --result-ttl 1ms: \(brief.code) \(brief.stdout) \(brief.stderr)")

                // I/O job, waited for.
                let echo = try await server.kiln("enqueue", "echo", #"{"a":1}"#, "--wait", "--wait-timeout", "20s")
                #expect(echo.code == 0 && echo.line == #"{"a":1}"#, "echo: \(echo.code) \(echo.stdout) \(echo.stderr)")

                // Several jobs waited for at once: the producer subscribes to the queue's done
                // channel, the worker's scripts publish on it.
                let batchPath = NSTemporaryDirectory() + "kiln-acl-batch-\(UUID().uuidString)"
                try "{\"type\":\"echo\",\"payload\":1}\n{\"type\":\"echo\",\"payload\":2}\n".write(toFile: batchPath, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: batchPath) }
                let batch = try await server.kiln("enqueue", "--batch", batchPath, "--wait", "--wait-timeout", "20s")
                #expect(batch.code == 0 && batch.stdout == "1\n2\n", "batch --wait: \(batch.code) \(batch.stdout) \(batch.stderr)")

                // CPU job in the pool; result and status read back.
                let spin = try await server.kiln("enqueue", "cpu.spin", #"{"n":1000}"#)
                #expect(spin.code == 0, "enqueue cpu.spin: \(spin.stderr)")
                let result = try await server.kiln("result", spin.line, "--wait", "--timeout", "20s")
                #expect(result.code == 0 && result.stdout.contains(#""n":1000"#), "result: \(result.code) \(result.stdout) \(result.stderr)")
                let status = try await server.kiln("status", spin.line)
                #expect(status.code == 0 && status.line == "succeeded", "status: \(status.code) \(status.stdout) \(status.stderr)")

                // A failing job with one retry: scheduled, promoted by the reaper, then dead-lettered.
                let fail = try await server.kiln("enqueue", "fail", #"{"message":"acl"}"#, "--retries", "1", "--wait", "--wait-timeout", "20s")
                #expect(fail.code == 4 && fail.stderr.contains("dead"), "fail: \(fail.code) \(fail.stdout) \(fail.stderr)")
                #expect(try await server.admin.send(["ZCARD", ACLTests.K.dead("default")]).int == 1)
                let failID = try await server.admin.send(["ZRANGE", ACLTests.K.dead("default"), "0", "0"]).array.first?.string ?? "?"
                // The producer may list dead letters but not take them out of the dead set.
                let dead = try await server.kiln("dead")
                #expect(dead.code == 0 && dead.stdout.contains(failID), "dead: \(dead.code) \(dead.stdout) \(dead.stderr)")
                let retry = try await server.kiln("retry", failID)
                #expect(retry.code == 1 && (retry.stderr.contains("NOPERM") || retry.stderr.contains("no permissions")), "retry as producer: \(retry.code) \(retry.stdout) \(retry.stderr)")
                _ = try await server.admin.send(["ACL", "LOG", "RESET"])

                // Cancel of a running job: published to the worker, which stops it.
                let sleeper = try await server.kiln("enqueue", "sleep", #"{"ms":20000}"#)
                #expect(sleeper.code == 0, "enqueue sleep: \(sleeper.stderr)")
                try await eventually("the sleep job did not start", timeout: .seconds(10)) { try await server.status(sleeper.line) == "running" }
                let cancel = try await server.kiln("cancel", sleeper.line)
                #expect(cancel.code == 0 && cancel.stdout == "cancelled\n", "cancel: \(cancel.code) \(cancel.stdout) \(cancel.stderr)")

                // Cancel of a queued job (on a queue no worker serves): removed and finalized by the producer.
                let idle = try await server.kiln("enqueue", "echo", "1", "--queue", "idle")
                #expect(idle.code == 0, "enqueue to idle: \(idle.stderr)")
                let cancelQueued = try await server.kiln("cancel", idle.line)
                #expect(cancelQueued.code == 0 && cancelQueued.stdout == "cancelled\n", "cancel queued: \(cancelQueued.code) \(cancelQueued.stdout) \(cancelQueued.stderr)")
                #expect(try await server.admin.send(["LLEN", ACLTests.K.ready("idle", .io)]).int == 0)

                let queues = try await server.kiln("queues")
                #expect(queues.code == 0 && queues.stdout.contains("default"), "queues: \(queues.code) \(queues.stdout) \(queues.stderr)")

                // A caller-chosen id: checked for existence before anything is written, and refused once taken.
                let chosen = try await server.kiln("enqueue", "echo", "7", "--id", "order-7", "--wait", "--wait-timeout", "20s")
                #expect(chosen.code == 0 && chosen.line == "7", "enqueue --id: \(chosen.code) \(chosen.stdout) \(chosen.stderr)")
                let again = try await server.kiln("enqueue", "echo", "7", "--id", "order-7")
                #expect(again.code == 2 && again.stderr.contains("already exists"), "enqueue --id again: \(again.code) \(again.stdout) \(again.stderr)")

                let longCode = try await longWait.wait(timeout: .seconds(40))
                #expect(longCode == 0, "a wait of 17 s: \(longCode) \(longWait.stdout) \(longWait.stderr)")
                // By now (17 s later) the reaper has expired the 1 ms result.
                #expect(try await server.status("brief-1") == nil, "the expired result was not deleted")
                #expect(try await server.admin.send(["SISMEMBER", ACLTests.K.revived("default"), "brief-1"]).int == 0)

                // A running job's lease is renewed, and on shutdown it is handed back to the queue.
                let held = try await server.kiln("enqueue", "sleep", #"{"ms":20000}"#)
                #expect(held.code == 0, "enqueue sleep: \(held.stderr)")
                try await eventually("the second sleep job did not start", timeout: .seconds(10)) { try await server.status(held.line) == "running" }
                let firstLease = try await server.admin.send(["ZSCORE", ACLTests.K.leases("default"), held.line]).string.flatMap { Double($0) } ?? 0
                try await eventually("the lease was not renewed", timeout: .seconds(5)) {
                    let lease = try await server.admin.send(["ZSCORE", ACLTests.K.leases("default"), held.line]).string.flatMap { Double($0) } ?? 0
                    return lease > firstLease
                }
                worker.signal(SIGTERM)
                let code = try await worker.wait(timeout: .seconds(20))
                #expect(code == 0, "worker exit code \(code): \(worker.output.suffix(1500))")
                #expect(try await server.status(held.line) == "queued")
                let back = try await server.kiln("status", held.line)
                #expect(back.line == "queued", "status after hand-back: \(back.stdout) \(back.stderr)")

                #expect(!worker.stderr.contains("NOPERM") && !worker.stderr.contains("no permissions"), "worker was refused something:\n\(worker.stderr.suffix(3000))")
            }
            let denials = try await server.aclLog()
            #expect(denials.isEmpty, "Redis logged ACL denials during the flow: \(denials)")
        }
    }

    // MARK: what each user must not do

    @Test func producerCannotRunWorkerTransitionsOrLeaveThePrefix() async throws {
        try await withACLServer { server in
            let client = try KilnClient(options: KilnClientOptions(redis: try RedisConfiguration(url: server.producerURL), prefix: "kiln"))
            defer { client.close() }
            let job = try await client.enqueue("echo", json: "1")
            let k = client.store.keys
            let q = "default"

            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let store = client.store
            await expectDenied("fetch") {
                _ = try await store.fetch(queue: q, kind: .io, max: 1, worker: "intruder", lease: .seconds(30), now: now)
            }
            await expectDenied("finish") {
                let r = try await store.finish([(q, [AttemptOutcome(id: job.id, token: "1", ending: .succeeded, result: #""forged""#, endedAt: now)][...])])
                if case .failure(let e) = r[0] { throw e }
            }
            await expectDenied("reap") {
                _ = try await store.reap(queue: q, now: now, limit: 10, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
            }
            await expectDenied("extend") {
                _ = try store.extendBlocking(queue: q, jobs: [(job.id, "1")], deadline: now, lease: .seconds(2))
            }
            await expectDenied("release") {
                _ = try await store.release(queue: q, id: job.id, token: "1", to: .io, now: now)
            }
            await expectDenied("sweep") {
                _ = try await store.sweep(queue: q, cursor: "0", deadline: now)
            }
            for command in [
                ["ZADD", k.leases(q), "0", job.id], ["ZREM", k.dead(q), job.id], ["DEL", k.dead(q)], ["SADD", k.revived(q), job.id],
                ["SET", "other:key", "1"], ["GET", "other:key"], ["HEXISTS", "other:{default}:jobs", job.id], ["HGETALL", k.jobs(q)], ["EVAL", "return 1", "0"], ["FLUSHALL"], ["KEYS", "*"],
                ["CONFIG", "GET", "maxmemory"], ["SUBSCRIBE", "other:cancel"], ["SADD", "other:queues", "x"], ["LPUSH", "other:list", "x"],
                ["SCAN", "0"], ["HDEL", k.jobs(q), job.id],
            ] {
                await expectDenied("producer \(command.joined(separator: " "))") { _ = try await client.connection.send(command) }
            }
            // Nothing moved: the job is still queued and nobody holds a lease.
            #expect(try await server.status(job.id) == "queued")
            #expect(try await server.admin.send(["LRANGE", k.ready(q, .io), "0", "-1"]).array.compactMap(\.string) == [job.id])
            #expect(try await server.admin.send(["ZCARD", k.leases(q)]).int == 0)
            #expect(try await server.admin.send(["EXISTS", "other:key"]).int == 0)
        }
    }

    @Test func workerCannotAdministerRedisOrLeaveThePrefix() async throws {
        try await withACLServer { server in
            let worker = RedisConnection(configuration: try RedisConfiguration(url: server.workerURL))
            defer { worker.close() }
            #expect(try await worker.send(["PING"]).string == "PONG")
            for command in [
                ["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "maxmemory"], ["CONFIG", "SET", "maxmemory", "1"], ["ACL", "LIST"],
                ["KEYS", "*"], ["SET", "other:key", "1"], ["SADD", ACLTests.K.queues, "x"], ["PUBLISH", "other:channel", "x"],
                ["EVAL", "return 1", "0"], ["SHUTDOWN"], ["HSET", "other:{default}:jobs", "x", "1"], ["SMEMBERS", ACLTests.K.queues], ["RPUSH", "other:list", "x"],
                ["SCAN", "0"],
            ] {
                await expectDenied("worker \(command.joined(separator: " "))") { _ = try await worker.send(command) }
            }
            #expect(try await server.admin.send(["DBSIZE"]).int == 0)

            _ = try await server.admin.send(["ACL", "LOG", "RESET"])
            // The version marker (first: a prefix with queues but no marker is old data): the
            // worker may set it if missing and read it.
            try await KilnStore(prefix: "kiln", connection: worker).checkVersion(mark: true)
            #expect(try await server.admin.send(["GET", ACLTests.K.version]).string == String(KilnStore.protocolVersion))
            // The reaper's sweep (every 5 minutes, too rare for the flow): the sweep script pages
            // through Q:jobs with HSCAN and gives a job marked running without a lease one.
            var orphan = RawRecord()
            orphan.status = .int(2)
            try await orphan.put(server.adminStore, id: "ORPHAN")
            let deadline = Int64(Date().timeIntervalSince1970 * 1000) + 30_000
            let found = try await KilnStore(prefix: "kiln", connection: worker).sweepAll(queue: "default", deadline: deadline)
            #expect(found == 1)
            #expect(try await server.admin.send(["ZSCORE", ACLTests.K.leases("default"), "ORPHAN"]).string == String(deadline))
            let denials = try await server.aclLog()
            #expect(denials.isEmpty, "the version check or the sweep was refused: \(denials)")
        }
    }
}
