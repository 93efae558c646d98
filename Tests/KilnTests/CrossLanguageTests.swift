import Foundation
import Kiln
import KilnRedis
import Testing

/// A producer in another language: the worked example of docs/protocol.md, run with nothing but
/// `sh` and `redis-cli` (plus `kiln script` to get the Lua text), against a real Kiln worker.
@Suite struct CrossLanguageTests {
    let redis = TestRedis.shared

    @Test func redisCliEnqueuesAndReadsTheResultAsTheProtocolDocSays() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let worker = try await cli.startWorker(["--processes", "0"])
        defer { worker.signal(SIGKILL) }
        let P = cli.prefix
        let dir = NSTemporaryDirectory() + "kiln-xlang-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
        set -eu
        R="redis-cli -p \(redis.port)"
        "\(KilnBinary.path)" script enqueue > "\(dir)/enqueue.lua"
        SHA=$($R SCRIPT LOAD "$(cat "\(dir)/enqueue.lua")")
        NOW=$(date +%s%3N)
        $R SET '\(P):version' 2 NX > /dev/null
        test "$($R GET '\(P):version')" = 2
        $R SADD '\(P):queues' default > /dev/null
        echo "first: $($R EVALSHA "$SHA" 2 '\(P):{default}:job:order-42' '\(P):{default}:pending:io' order-42 echo default io '{"hello":"world"}' 4 300000 86400000 "$NOW")"
        echo "again: $($R EVALSHA "$SHA" 2 '\(P):{default}:job:order-42' '\(P):{default}:pending:io' order-42 echo default io '{"hello":"world"}' 4 300000 86400000 "$NOW")"
        echo "done: $($R BLMOVE '\(P):{default}:done:order-42' '\(P):{default}:done:order-42' RIGHT RIGHT 20)"
        echo "result: $($R HGET '\(P):{default}:job:order-42' result)"
        """
        let p = try ChildProcess(["/bin/sh", "-c", script])
        let code = try await p.wait(timeout: .seconds(60))
        #expect(code == 0, "sh: \(p.stderr)")
        #expect(p.stdout == """
        first: 1
        again: 0
        done: succeeded
        result: {"hello":"world"}

        """, "stdout: \(p.stdout) stderr: \(p.stderr)")
        // Kiln itself sees the same job, finished, with the producer's id and payload.
        let status = try await cli.run("status", "order-42", "--json")
        #expect(status.code == 0 && status.stdout.contains(#""payload":{"hello":"world"}"#) && status.stdout.contains(#""status":"succeeded""#), "\(status.stdout) \(status.stderr)")
    }

    @Test func kilnScriptPrintsEveryScriptAndRefusesUnknownNames() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let list = try await cli.run("script", "--list")
        #expect(list.code == 0 && list.stdout.split(separator: "\n").map(String.init) == KilnScripts.all.map(\.name))
        let enqueue = try await cli.run("script", "enqueue")
        #expect(enqueue.code == 0 && enqueue.stdout.hasPrefix("-- kiln scripts v\(KilnScripts.version)\n"))
        let bad = try await cli.run("script", "nope")
        #expect(bad.code == 2 && bad.stderr.split(separator: "\n").count == 1 && bad.stderr.contains("kiln script --list"))
    }
}
