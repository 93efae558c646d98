import Foundation
import Kiln
import KilnRedis
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The `kiln` command line's contract, run against the real binary and a real Redis:
/// exit codes (0 success/found/cancel done; 1 Redis or runtime error; 2 usage or bad input;
/// 3 waited and not finished; 4 finished without success, or cancel of a finished job; 5 no such
/// job), one-line `kiln: error:` messages on stderr, and what each command prints.
@Suite(.serialized) struct CLIContractTests {
    let redis = TestRedis.shared

    /// A CLI bound to the shared Redis and a prefix of its own.
    func freshCLI() -> KilnCLI { KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix()) }

    /// Runs `body` with a worker (one pool process, 2 s lease) and stops it afterwards, also when
    /// `body` throws. A short shutdown grace keeps a failed test from waiting 30 s on a job still
    /// running.
    func withWorker(_ cli: KilnCLI, _ body: (ChildProcess) async throws -> Void) async throws {
        let worker = try await cli.startWorker(["--processes", "1", "--lease", "2s", "--shutdown-grace", "1s"])
        do {
            try await body(worker)
        } catch {
            try? await cli.stop(worker)
            throw error
        }
        try await cli.stop(worker)
    }

    /// All keys under the prefix (empty if the CLI wrote nothing).
    func keys(_ prefix: String) async throws -> [String] {
        let client = try redis.client(prefix: prefix)
        defer { client.close() }
        return try await client.connection.send(["KEYS", "\(prefix):*"]).array.compactMap(\.string)
    }

    /// Runs the kiln binary with an environment of our own (for Redis URLs KilnCLI cannot make).
    func runKiln(_ args: [String], environment: [String: String]) async throws -> KilnCLI.Result {
        let p = try ChildProcess([KilnBinary.path] + args, environment: environment)
        let code = try await p.wait(timeout: .seconds(30))
        return KilnCLI.Result(code: code, stdout: p.stdout, stderr: p.stderr)
    }

    // MARK: enqueue and status without a worker

    @Test func enqueuePrintsOneJobIdAndStatusSaysQueued() async throws {
        let cli = freshCLI()
        let r = try await cli.run("enqueue", "noop")
        #expect(r.code == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "expected exactly one line, got \(r.stdout.debugDescription)")
        let id = r.line
        #expect(id.count == 26, "job id \(id.debugDescription) is not 26 characters")
        #expect(r.stderr.isEmpty)

        let status = try await cli.run("status", id)
        #expect(status.code == 0 && status.stdout == "queued\n", "\(status.summary)")

        let js = try await cli.run("status", id, "--json")
        #expect(js.code == 0, "\(js.summary)")
        let jsonLines = js.stdout.split(separator: "\n")
        #expect(jsonLines.count == 1, "expected one JSON line, got \(js.stdout.debugDescription)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(js.line.utf8)) as? [String: Any])
        for field in ["id", "type", "queue", "kind", "status", "payload", "result", "error", "attempts", "max_attempts",
                      "timeout_ms", "result_ttl_ms", "enqueued_at", "started_at", "finished_at", "worker"] {
            #expect(obj.keys.contains(field), "status --json lacks field '\(field)': \(js.line)")
        }
        #expect(obj["id"] as? String == id)
        #expect(obj["type"] as? String == "noop")
        #expect(obj["queue"] as? String == "default")
        #expect(obj["status"] as? String == "queued")
        #expect(obj["attempts"] as? Int == 0)
    }

    @Test func resultOfAQueuedJobExits3() async throws {
        let cli = freshCLI()
        let id = try await cli.run("enqueue", "noop").line

        let r = try await cli.run("result", id)
        #expect(r.code == 3, "\(r.summary)")
        expectOneLineError(r)

        let start = ContinuousClock.now
        let w = try await cli.run("result", id, "--wait", "--timeout", "300ms")
        let elapsed = ContinuousClock.now - start
        #expect(w.code == 3, "\(w.summary)")
        expectOneLineError(w)
        #expect(elapsed >= .milliseconds(300), "result --wait --timeout 300ms returned after \(elapsed)")
        #expect(elapsed < .seconds(10), "result --wait --timeout 300ms took \(elapsed)")
        #expect(try await cli.run("status", id).line == "queued")
    }

    // MARK: with a worker

    @Test func builtInJobsRunAndPrintTheirResults() async throws {
        let cli = freshCLI()
        try await withWorker(cli) { _ in
            let echo = try await cli.run(["enqueue", "echo", #"{"a":[1,2]}"#, "--wait", "--wait-timeout", "20s"])
            #expect(echo.code == 0, "\(echo.summary)")
            #expect(try parseJSON(echo.line) == parseJSON(#"{"a":[1,2]}"#), "echo printed \(echo.stdout.debugDescription)")

            let sleep = try await cli.run(["enqueue", "sleep", #"{"ms":50}"#, "--wait", "--wait-timeout", "20s"])
            #expect(sleep.code == 0, "\(sleep.summary)")
            #expect(try parseJSON(sleep.line) == parseJSON(#"{"slept_ms":50}"#), "sleep printed \(sleep.stdout.debugDescription)")

            let record = try await cli.run(["enqueue", "sleep", #"{"ms":50}"#, "--wait", "--json", "--wait-timeout", "20s"])
            #expect(record.code == 0, "\(record.summary)")
            #expect(record.stdout.split(separator: "\n").count == 1, "expected one JSON line: \(record.stdout.debugDescription)")
            let rec = try #require(try JSONSerialization.jsonObject(with: Data(record.line.utf8)) as? [String: Any])
            #expect(rec["status"] as? String == "succeeded")
            #expect(rec["type"] as? String == "sleep")
            #expect(rec["attempts"] as? Int == 1)
            #expect((rec["result"] as? [String: Any])?["slept_ms"] as? Int == 50)
            #expect(rec["id"] as? String != nil && rec["worker"] as? String != nil && rec["finished_at"] as? Int != nil)

            // A failing job: --wait exits 4 with the job's message; `result` then also says 4.
            let failID = JobID.make()
            let fail = try await cli.run(["enqueue", "fail", #"{"message":"boom"}"#, "--retries", "0", "--id", failID,
                                          "--wait", "--wait-timeout", "20s"])
            #expect(fail.code == 4, "\(fail.summary)")
            expectOneLineError(fail, mentioning: "boom")
            let failResult = try await cli.run("result", failID)
            #expect(failResult.code == 4, "\(failResult.summary)")
            expectOneLineError(failResult, mentioning: "boom")
            #expect(try await cli.run("status", failID).line == "failed")

            // CPU jobs run in the process pool.
            let spin = try await cli.run(["enqueue", "cpu.spin", #"{"n":1000}"#, "--wait", "--wait-timeout", "20s"])
            #expect(spin.code == 0, "\(spin.summary)")
            #expect(try parseJSON(spin.line)["n"] == .number(1000), "cpu.spin printed \(spin.stdout.debugDescription)")

            let hash = try await cli.run(["enqueue", "sha256", #"{"data":"abc"}"#, "--wait", "--wait-timeout", "20s"])
            #expect(hash.code == 0, "\(hash.summary)")
            #expect(try parseJSON(hash.line)["sha256"] == .string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                    "sha256 printed \(hash.stdout.debugDescription)")

            let cpuNoopID = JobID.make()
            let cpuNoop = try await cli.run(["enqueue", "noop", "--cpu", "--id", cpuNoopID, "--wait", "--wait-timeout", "20s"])
            #expect(cpuNoop.code == 0 && cpuNoop.line == "null", "\(cpuNoop.summary)")
            let cpuNoopRecord = try parseJSON(try await cli.run("status", cpuNoopID, "--json").line)
            #expect(cpuNoopRecord["kind"] == .string("cpu") && cpuNoopRecord["status"] == .string("succeeded"), "\(cpuNoopRecord)")
        }
    }

    @Test func httpGetFetchesFromALoopbackServer() async throws {
        let cli = freshCLI()
        let server = try LoopbackHTTPServer(maxRequests: 4)
        defer { server.stop() }
        try await withWorker(cli) { _ in
            let r = try await cli.run(["enqueue", "http.get", #"{"url":"http://127.0.0.1:\#(server.port)/x"}"#,
                                       "--retries", "0", "--wait", "--wait-timeout", "20s"])
            #expect(r.code == 0, "\(r.summary)")
            let result = try parseJSON(r.line)
            #expect(result["status"] == .number(200), "http.get printed \(r.stdout.debugDescription)")
            #expect(result["bytes"] == .number(5), "http.get printed \(r.stdout.debugDescription)")
            #expect(result["ms"] != nil, "http.get printed \(r.stdout.debugDescription)")
            #expect(server.requestCount == 1)

            let bad = try await cli.run(["enqueue", "http.get", #"{"url":"notaurl"}"#, "--retries", "0", "--wait", "--wait-timeout", "20s"])
            #expect(bad.code == 4, "\(bad.summary)")
            expectOneLineError(bad, mentioning: "url")
        }
    }

    // MARK: batches and queues

    @Test func batchEnqueuePrintsIdsInInputOrder() async throws {
        let cli = freshCLI()
        let input = """
        {"type":"echo","payload":{"a":1}}
        {"type":"sleep","payload":{"ms":5}}
        {"type":"noop","queue":"other"}

        """
        let r = try await cli.run(["enqueue", "--batch", "-"], stdin: input)
        #expect(r.code == 0, "\(r.summary)")
        let ids = r.stdout.split(separator: "\n").map(String.init)
        try #require(ids.count == 3, "expected 3 ids, got \(r.stdout.debugDescription)")
        #expect(Set(ids).count == 3 && ids.allSatisfy { $0.count == 26 }, "\(ids)")

        let expected: [(type: String, queue: String, payload: JSONValue)] = [
            ("echo", "default", .object(["a": .number(1)])),
            ("sleep", "default", .object(["ms": .number(5)])),
            ("noop", "other", .null),
        ]
        for (id, want) in zip(ids, expected) {
            // No --queue: status finds the job in whichever queue it is on.
            let s = try await cli.run("status", id, "--json")
            #expect(s.code == 0, "status of \(id): \(s.summary)")
            let rec = try parseJSON(s.line)
            #expect(rec["type"] == .string(want.type), "\(id): \(s.line)")
            #expect(rec["queue"] == .string(want.queue), "\(id): \(s.line)")
            #expect(rec["payload"] == want.payload, "\(id): \(s.line)")
            #expect(rec["status"] == .string("queued"), "\(id): \(s.line)")
        }
        #expect(try await cli.run("status", ids[2]).line == "queued")
        #expect(try await cli.run("status", ids[2], "--queue", "other").code == 0)
        // In input order: ULIDs made by one process count up.
        #expect(ids == ids.sorted())
    }

    /// The per-line fields `enqueue --help` documents for --batch: "retries" (a whole number) and
    /// "timeout" (a duration string or a number of seconds).
    @Test func batchLineRetriesAndTimeoutFields() async throws {
        let cli = freshCLI()
        func enqueueLine(_ line: String) async throws -> (KilnCLI.Result, JSONValue?) {
            let r = try await cli.run(["enqueue", "--batch", "-"], stdin: line + "\n")
            guard r.code == 0 else { return (r, nil) }
            return (r, try parseJSON(try await cli.run("status", r.line, "--json").line))
        }
        // Values that work.
        for (line, field, want) in [(#"{"type":"noop","retries":2}"#, "max_attempts", 3.0),
                                    (#"{"type":"noop","timeout":"30s"}"#, "timeout_ms", 30_000),
                                    (#"{"type":"noop","timeout":2}"#, "timeout_ms", 2_000)] {
            let (r, rec) = try await enqueueLine(line)
            #expect(r.code == 0, "\(line): \(r.summary)")
            #expect(rec?[field] == .number(want), "\(line): \(String(describing: rec))")
        }
        // A JSON boolean is not a whole number.
        let (boolRetries, _) = try await enqueueLine(#"{"type":"noop","retries":true}"#)
        #expect(boolRetries.code == 2, "\(boolRetries.summary)")
        expectOneLineError(boolRetries, mentioning: "line 1")

        // 0 and 1 are numbers, not booleans (a regression: JSONSerialization's NSNumbers for 0
        // and 1 also cast to Bool on Linux, and the batch reader once refused them).
        for (line, field, want) in [(#"{"type":"noop","retries":0}"#, "max_attempts", 1.0),
                                    (#"{"type":"noop","retries":1}"#, "max_attempts", 2.0),
                                    (#"{"type":"noop","timeout":1}"#, "timeout_ms", 1_000)] {
            let (r, rec) = try await enqueueLine(line)
            #expect(r.code == 0, "\(line): \(r.summary)")
            #expect(rec?[field] == .number(want), "\(line): \(String(describing: rec))")
        }
    }

    @Test func batchWithAMalformedLineWritesNothing() async throws {
        let cli = freshCLI()
        let input = """
        {"type":"echo","payload":{"a":1}}
        {"type":"echo","payload":
        {"type":"noop","queue":"other"}

        """
        let r = try await cli.run(["enqueue", "--batch", "-"], stdin: input)
        #expect(r.code == 2, "\(r.summary)")
        #expect(r.stdout.isEmpty, "printed ids for a refused batch: \(r.stdout.debugDescription)")
        expectOneLineError(r, mentioning: "line 2")
        #expect(try await keys(cli.prefix).isEmpty)
        let queues = try await cli.run("queues", "--json")
        #expect(queues.code == 0 && queues.stdout.isEmpty, "\(queues.summary)")
    }

    @Test func queuesListsCountsPerQueue() async throws {
        let cli = freshCLI()
        for args in [["enqueue", "noop"], ["enqueue", "noop"], ["enqueue", "noop", "--queue", "other", "--cpu"]] {
            let r = try await cli.run(args)
            #expect(r.code == 0, "\(args): \(r.summary)")
        }
        let js = try await cli.run("queues", "--json")
        #expect(js.code == 0, "\(js.summary)")
        let rows = try js.stdout.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
        }
        #expect(rows.count == 2, "\(js.stdout)")
        for row in rows {
            for field in ["queue", "queued", "running", "retrying", "dead"] {
                #expect(row.keys.contains(field), "queues --json lacks '\(field)': \(row)")
            }
        }
        let byName = Dictionary(uniqueKeysWithValues: rows.compactMap { row in (row["queue"] as? String).map { ($0, row) } })
        #expect(byName["default"]?["queued"] as? Int == 2, "\(js.stdout)")
        #expect(byName["other"]?["queued"] as? Int == 1, "\(js.stdout)")
        #expect(byName["default"]?["running"] as? Int == 0 && byName["default"]?["dead"] as? Int == 0, "\(js.stdout)")

        let plain = try await cli.run("queues")
        #expect(plain.code == 0, "\(plain.summary)")
        let lines = plain.stdout.split(separator: "\n")
        #expect(lines.first?.contains("queued") == true, "\(plain.stdout)")
        #expect(lines.count == 3, "\(plain.stdout)")
    }

    // MARK: bad input

    @Test func badInputExits2WithOneLineAndWritesNothing() async throws {
        let cli = freshCLI()
        let bigPath = NSTemporaryDirectory() + "kiln-big-\(UUID().uuidString).json"
        // A JSON string just over 1 MiB.
        try ("\"" + String(repeating: "a", count: (1 << 20) + 10) + "\"").write(toFile: bigPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bigPath) }

        let cases: [(args: [String], mentions: String)] = [
            (["enqueue", "echo", "{bad"], "JSON"),
            (["enqueue", "echo", #""12345678901234567""#, "--max-payload", "10"], "limit"),
            (["enqueue", "echo", "@" + bigPath], "limit"),
            (["enqueue", "noop", "--timeout", "5x"], "5x"),
            (["enqueue", "noop", "--bogus"], "--bogus"),
            (["enqueue", "noop", "--cpu", "--io"], "--cpu"),
            (["frobnicate"], "frobnicate"),
            (["worker", "--pool-nice", "20"], "--pool-nice"),
            (["worker", "--fetch-batch", "0"], "--fetch-batch"),
        ]
        for c in cases {
            let r = try await cli.run(c.args)
            #expect(r.code == 2, "kiln \(c.args.joined(separator: " ").prefix(80)): \(r.code), stderr \(r.stderr.prefix(300))")
            #expect(r.stdout.isEmpty, "kiln \(c.args.joined(separator: " ").prefix(80)) printed \(r.stdout.prefix(300).debugDescription)")
            expectOneLineError(r, mentioning: c.mentions)
        }
        #expect(try await keys(cli.prefix).isEmpty)
    }

    // MARK: Redis errors

    @Test func unreachableRedisExits1AndNamesTheAddress() async throws {
        let port = TestRedis.freePort()
        let r = try await runKiln(["enqueue", "noop"], environment: ["KILN_REDIS_URL": "redis://127.0.0.1:\(port)",
                                                                     "KILN_PREFIX": TestRedis.uniquePrefix()])
        #expect(r.code == 1, "\(r.summary)")
        #expect(r.stdout.isEmpty)
        expectOneLineError(r, mentioning: "127.0.0.1:\(port)")
    }

    @Test func wrongPasswordExits1WithoutPrintingIt() async throws {
        let secured = try TestRedis(password: "pw-right")
        defer {
            secured.stop()
            try? FileManager.default.removeItem(atPath: secured.dir)
        }
        let prefix = TestRedis.uniquePrefix()
        let wrongURL = "redis://:pw-wrong@127.0.0.1:\(secured.port)"

        let r = try await runKiln(["enqueue", "noop"], environment: ["KILN_REDIS_URL": wrongURL, "KILN_PREFIX": prefix])
        #expect(r.code == 1, "\(r.summary)")
        expectOneLineError(r, mentioning: "authentication failed")
        #expect(!r.stderr.contains("pw-wrong") && !r.stdout.contains("pw-wrong"), "the password leaked: \(r.summary)")

        // Same with the URL on the command line.
        let flag = try await runKiln(["status", "01NOSUCHJOB0000000000000000", "--redis", wrongURL], environment: ["KILN_PREFIX": prefix])
        #expect(flag.code == 1, "\(flag.summary)")
        expectOneLineError(flag, mentioning: "authentication failed")
        #expect(!flag.stderr.contains("pw-wrong"), "the password leaked: \(flag.summary)")

        // And the right password works, so the failure above was the password's.
        let ok = try await KilnCLI(redis: secured, prefix: prefix).run("enqueue", "noop")
        #expect(ok.code == 0 && ok.line.count == 26, "\(ok.summary)")
    }

    // MARK: unknown jobs

    @Test func unknownJobExits5() async throws {
        let cli = freshCLI()
        _ = try await cli.run("enqueue", "noop")  // the prefix has a queue to look in
        for command in ["status", "result", "cancel"] {
            let r = try await cli.run(command, "01NOSUCHJOB0000000000000000")
            #expect(r.code == 5, "kiln \(command): \(r.summary)")
            #expect(r.stdout.isEmpty, "kiln \(command) printed \(r.stdout.debugDescription)")
            expectOneLineError(r, mentioning: "01NOSUCHJOB0000000000000000")
        }
        let waited = try await cli.run("result", "01NOSUCHJOB0000000000000000", "--wait", "--timeout", "300ms")
        #expect(waited.code == 5, "\(waited.summary)")
        expectOneLineError(waited)
    }

    // MARK: cancel

    @Test func cancelOfAQueuedJobThenAgain() async throws {
        let cli = freshCLI()
        let id = try await cli.run("enqueue", "noop").line

        let c = try await cli.run("cancel", id)
        #expect(c.code == 0 && c.stdout == "cancelled\n", "\(c.summary)")
        #expect(c.stderr.isEmpty)
        #expect(try await cli.run("status", id).line == "cancelled")

        let again = try await cli.run("cancel", id)
        #expect(again.code == 4, "\(again.summary)")
        #expect(again.stdout == "cancelled\n", "\(again.summary)")
        expectOneLineError(again, mentioning: "nothing changed")

        // The result of a cancelled job is an unsuccessful finish.
        let result = try await cli.run("result", id)
        #expect(result.code == 4, "\(result.summary)")
        expectOneLineError(result)
        // And it is no longer queued.
        let q = try parseJSON(try await cli.run("queues", "--json").line)
        #expect(q["queued"] == .number(0), "\(q)")
    }

    /// Enqueues a job that runs for minutes, waits until it runs, cancels it from another
    /// process and checks it stopped promptly and ended cancelled.
    private func cancelWhileRunning(_ cli: KilnCLI, _ type: String, _ payload: String) async throws {
        let id = try await cli.run(["enqueue", type, payload, "--retries", "0"]).line
        try await eventually("job \(id) did not start running", timeout: .seconds(15)) {
            try await cli.run("status", id).line == "running"
        }
        let start = ContinuousClock.now
        let c = try await cli.run("cancel", id)
        let elapsed = ContinuousClock.now - start
        #expect(c.code == 0 && c.stdout == "cancelled\n", "\(c.summary)")
        #expect(elapsed < .seconds(5), "cancel took \(elapsed)")
        #expect(try await cli.run("status", id).line == "cancelled")
        let result = try await cli.run("result", id)
        #expect(result.code == 4, "\(result.summary)")
    }

    @Test func cancelOfARunningIOJobFromAnotherProcess() async throws {
        let cli = freshCLI()
        try await withWorker(cli) { _ in
            try await cancelWhileRunning(cli, "sleep", #"{"ms":20000}"#)
        }
    }

    @Test func cancelOfARunningCPUJobFromAnotherProcess() async throws {
        let cli = freshCLI()
        try await withWorker(cli) { _ in
            try await cancelWhileRunning(cli, "cpu.spin", #"{"n":100000000000}"#)
            // The pool replaced the killed child: the next CPU job runs.
            let next = try await cli.run(["enqueue", "cpu.spin", #"{"n":1000}"#, "--wait", "--wait-timeout", "20s"])
            #expect(next.code == 0, "\(next.summary)")
            #expect(try parseJSON(next.line)["n"] == .number(1000), "\(next.summary)")
        }
    }

    // MARK: help

    @Test func helpExits0() async throws {
        let r = try await freshCLI().run("--help")
        #expect(r.code == 0, "\(r.summary)")
        #expect(r.stdout.contains("enqueue"), "\(r.stdout.prefix(500))")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }
}

/// The text parsed as JSON (any value, fragments too).
private func parseJSON(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

/// Errors are one line on stderr: `kiln: error: ...`, naming the problem.
private func expectOneLineError(_ r: KilnCLI.Result, mentioning text: String? = nil,
                                sourceLocation: SourceLocation = #_sourceLocation) {
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.count == 2 && lines[1].isEmpty, "stderr is not exactly one line: \(r.stderr.prefix(500).debugDescription)",
            sourceLocation: sourceLocation)
    #expect(r.stderr.hasPrefix("kiln: error: "), "stderr does not start with 'kiln: error:': \(r.stderr.prefix(500).debugDescription)",
            sourceLocation: sourceLocation)
    if let text {
        #expect(r.stderr.contains(text), "stderr does not mention \(text.debugDescription): \(r.stderr.prefix(500).debugDescription)",
                sourceLocation: sourceLocation)
    }
}

extension KilnCLI.Result {
    /// Exit code and output, for failure messages.
    fileprivate var summary: String { "exit \(code), stdout \(stdout.prefix(500).debugDescription), stderr \(stderr.prefix(500).debugDescription)" }
}
