import Foundation
import Kiln
import KilnRedis
import Testing

/// `HostileInputTests`, continued: hostile flags, environment variables and URLs, and a waiter
/// whose Redis restarts or stays down.
extension HostileInputTests {
    // MARK: flags, environment and URLs

    @Test func hostileFlagsAndEnvironmentGetOnePreciseLine() async throws {
        let cli = freshCLI()
        let cases: [(args: [String], env: [String: String], says: [String])] = [
            (["enqueue", "noop", "--retries", "-1"], [:], ["--retries", "-1"]),
            (["enqueue", "noop", "--timeout", "-1s"], [:], ["--timeout", "-1s", "negative"]),
            (["enqueue", "noop", "--timeout", "5x"], [:], ["--timeout", "5x", "ms, s, m or h"]),
            (["enqueue", "noop", "--result-ttl", "99999h"], [:], ["--result-ttl", "10 years"]),
            (["result", "x", "--wait", "--timeout", "-2s"], [:], ["--timeout", "-2s"]),
            (["dead", "--limit", "-3"], [:], ["--limit", "-3"]),
            (["worker", "--concurrency", "-1"], [:], ["--concurrency", "-1"]),
            (["enqueue", "noop"], ["KILN_MAX_PAYLOAD": "abc"], ["KILN_MAX_PAYLOAD", "abc"]),
            (["enqueue", "noop", "--max-payload", "0"], [:], ["--max-payload", "0"]),
            (["enqueue", "noop"], ["KILN_MAX_PAYLOAD": "-5"], ["KILN_MAX_PAYLOAD", "-5"]),
            (["worker"], ["KILN_CONCURRENCY": "abc"], ["KILN_CONCURRENCY", "abc"]),
            (["status", "x"], ["KILN_REDIS_TIMEOUT": "soon"], ["KILN_REDIS_TIMEOUT", "soon"]),
            (["status", "x"], ["KILN_REDIS_URL": "http://x"], ["KILN_REDIS_URL", "http"]),
            (["status", "x"], ["KILN_PREFIX": "a b"], ["KILN_PREFIX", "a b"]),
            (["worker"], ["KILN_QUEUES": "a b"], ["queue", "a b"]),
            (["dead", "--queue", "a b"], [:], ["queue", "a b"]),
            (["status", "x", "--queue", "a b"], [:], ["queue", "a b"]),
            (["result", "x", "--queue", "a b"], [:], ["queue", "a b"]),
            (["cancel", "x", "--queue", "a b"], [:], ["queue", "a b"]),
            (["retry", "--all-dead", "--queue", "a b"], [:], ["queue", "a b"]),
            (["enqueue", "noop", #""\ud800""#], [:], ["surrogate", "\\ud800"]),
            (["enqueue", "noop", #"{"a":"\udc00x"}"#], [:], ["surrogate"]),
        ]
        for c in cases {
            let r = try await HostileRecords.run(cli, c.args, environment: c.env)
            #expect(r.code == 2, "\(c.args) \(c.env): exit \(r.code) \(r.stderr.debugDescription)")
            for word in c.says { #expect(r.stderr.contains(word), "\(c.args) \(c.env): \(r.stderr.debugDescription) lacks \(word)") }
            #expect(!r.stderr.contains("Missing value") && !r.stderr.contains("Unexpected end of file"), "\(r.stderr)")
            HostileRecords.expectOneLine(r)
        }
        // Batch lines name their line for every field, the ones the client checks included.
        for (line, says) in [(#"{"type":"noop","timeout":"0s"}"#, "timeout"), (#"{"type":"noop","queue":"a b"}"#, "queue"),
                             (#"{"type":"noop","result_ttl":"0ms"}"#, "result"), (#"{"type":"noop","payload":"\ud800"}"#, "surrogate"),
                             (#"{"type":"noop","timeout":"-1s"}"#, "negative")] {
            let path = try HostileRecords.file(Array("{\"type\":\"noop\"}\n\(line)\n".utf8))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let r = try await cli.run("enqueue", "--batch", path)
            #expect(r.code == 2 && r.stderr.contains("batch line 2") && r.stderr.contains(says), "\(line): \(r.stderr)")
            HostileRecords.expectOneLine(r)
        }
        // A bad percent-escape in the password is a bad URL, not an authentication failure, and
        // the password is not shown.
        let url = "redis://:s3cr%zzet@127.0.0.1:\(redis.port)"
        let r = try await HostileRecords.run(cli, ["status", "x"], environment: ["KILN_REDIS_URL": url])
        #expect(r.code == 2 && r.stderr.contains("percent"), "\(r.stderr)")
        #expect(!r.stderr.contains("s3cr") && !r.stderr.contains("authentication"), "\(r.stderr)")
        HostileRecords.expectOneLine(r)
        #expect(try await HostileRecords.keys(redis, cli.prefix).isEmpty, "something was written")
    }

    @Test(arguments: ["redis://u:p%zz@h", "redis://%@h", "redis://:ab%4@h", "redis://%zz:pw@h", "unix:///s?password=p%zw"])
    func badPercentEscapesInCredentialsAreBadURLs(_ url: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("\(url) was accepted")
        } catch let e as RedisError {
            #expect(e.code == .invalidURL && e.message.contains("percent-escape"), "\(e.message)")
            #expect(!e.message.contains("%z") && !e.message.contains("pw") && !e.message.contains("%4"), "\(e.message)")
        } catch {
            Issue.record("\(url): \(error)")
        }
    }

    // MARK: waiting through a Redis restart

    @Test func resultWaitRidesOutARedisRestart() async throws {
        let aof = ["--appendonly", "yes", "--appendfsync", "always"]
        var own = try TestRedis(extraArgs: aof)
        let port = own.port, dir = own.dir
        defer { own.stop() }
        let cli = KilnCLI(redis: own, prefix: "kiln")
        let client = try own.client(prefix: "kiln")
        defer { client.close() }
        let job = try await client.enqueue("echo", json: #""back""#)
        let waiter = try ChildProcess([KilnBinary.path, "result", job.id, "--wait", "--timeout", "30s"], environment: cli.environment)
        let library = Task { try await job.value(timeout: .seconds(30)) }
        try await eventually("both waiters subscribed") { try await HostileRecords.waitingClients(own, prefix: "kiln") >= 2 }
        own.stop()
        own = try TestRedis(extraArgs: aof, dir: dir, port: port)
        #expect(waiter.poll() == nil, "the waiter gave up during the restart: \(waiter.stderr)")
        let worker = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        let code = try await waiter.wait(timeout: .seconds(30))
        #expect(code == 0 && waiter.stdout == "\"back\"\n", "exit \(code): \(waiter.stdout) \(waiter.stderr)")
        #expect(try await library.value == .string("back"))
        try await cli.stop(worker)

        // Redis stays down: the waiter gives up at its timeout, with a clear message.
        let second = try await client.enqueue("echo", json: "1")
        let startedAt = ContinuousClock.now
        let patient = try ChildProcess([KilnBinary.path, "result", second.id, "--wait", "--timeout", "3s"], environment: cli.environment)
        try await eventually("the waiter subscribed") { try await HostileRecords.waitingClients(own, prefix: "kiln") >= 1 }
        own.stop()
        let gaveUp = try await patient.wait(timeout: .seconds(20))
        // Its 3 s run from after it started, so it cannot be done sooner than 3 s after startedAt.
        let waited = ContinuousClock.now - startedAt
        #expect(gaveUp == 1, "exit \(gaveUp): \(patient.stderr)")
        #expect(waited >= .milliseconds(2950), "gave up after \(waited), before its timeout")
        #expect(patient.stderr.contains("3s") && patient.stderr.contains("\(port)"), "\(patient.stderr)")
        #expect(patient.stderr.split(separator: "\n").count == 1, "\(patient.stderr)")
    }

    @Test func resultWaitStartedWhileRedisIsDownWaitsForIt() async throws {
        let aof = ["--appendonly", "yes", "--appendfsync", "always"]
        var own = try TestRedis(extraArgs: aof)
        let port = own.port, dir = own.dir
        defer { own.stop() }
        let cli = KilnCLI(redis: own, prefix: "kiln")
        let client = try own.client(prefix: "kiln")
        defer { client.close() }
        let job = try await client.enqueue("echo", json: #""later""#)
        own.stop()
        // The CLI fails fast on single commands, but a waiter's first read must wait for Redis too.
        let startedAt = ContinuousClock.now
        let waiter = try ChildProcess([KilnBinary.path, "result", job.id, "--wait", "--timeout", "30s"], environment: cli.environment)
        try await eventually("the waiter has spent 1.5 s with Redis away, or exited") {
            waiter.poll() != nil || ContinuousClock.now - startedAt > .milliseconds(1500)
        }
        #expect(waiter.poll() == nil, "the waiter gave up while Redis was away: \(waiter.stderr)")
        own = try TestRedis(extraArgs: aof, dir: dir, port: port)
        let worker = try await cli.startWorker(["--processes", "0", "--shutdown-grace", "1s"])
        defer { worker.signal(SIGKILL) }
        let code = try await waiter.wait(timeout: .seconds(30))
        #expect(code == 0 && waiter.stdout == "\"later\"\n", "exit \(code): \(waiter.stdout) \(waiter.stderr)")
        try await cli.stop(worker)
    }
}
