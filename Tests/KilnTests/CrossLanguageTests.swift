import Foundation
import Kiln
import KilnRedis
import Testing

/// A producer in another language: the worked example of docs/protocol.md, run with nothing but
/// `sh`, `redis-cli` and `awk` (plus `kiln script` to get the Lua text), against a real Kiln worker.
@Suite struct CrossLanguageTests {
    let redis = TestRedis.shared

    @Test func redisCliEnqueuesAndReadsTheResultAsTheProtocolDocSays() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let worker = try await cli.startWorker(["--processes", "0"])
        defer { worker.signal(SIGKILL) }
        let P = cli.prefix
        // The commands of docs/protocol.md, "Worked example with redis-cli", with this test's
        // prefix and port: version marker, queue registry, EVALSHA of `enqueue` (a retry of the same
        // call recognised, a new call with the same id refused), then `get` until the status is final.
        let script = """
        set -eu
        R="redis-cli -p \(redis.port)"
        KILN="\(KilnBinary.path)"
        ENQ=$($R SCRIPT LOAD "$("$KILN" script enqueue)")
        GET=$($R SCRIPT LOAD "$("$KILN" script get)")
        V=$($R GET '\(P):version')
        if [ -z "$V" ]; then
          test "$($R EXISTS '\(P):queues')" = 0
          $R SET '\(P):version' 3 NX > /dev/null
          V=$($R GET '\(P):version')
        fi
        test "$V" = 3
        $R SADD '\(P):queues' default > /dev/null
        NOW=$(date +%s%3N)
        enqueue() {
          $R EVALSHA "$ENQ" 3 '\(P):{default}:jobs' '\(P):{default}:ready:io' '\(P):{default}:ready:cpu' \\
            '\(P):{default}:' "$1" order-42 echo io '{"hello":"world"}' 4 300000 86400000 | paste -sd ' ' -
        }
        echo "first: $(enqueue "$NOW")"
        echo "again: $(enqueue "$NOW")"
        echo "other: $(enqueue "$((NOW + 1))")"
        get() { $R EVALSHA "$GET" 1 '\(P):{default}:jobs' '\(P):{default}:' order-42; }
        field() { awk -v f="$1" 'NR % 2 == 1 { k = $0; next } k == f { print; exit }'; }
        S=
        for i in $(seq 200); do
          S=$(get | field status)
          case "$S" in succeeded|failed|timed_out|cancelled|dead) break ;; esac
          sleep 0.1
        done
        echo "status: $S"
        echo "result: $(get | field result)"
        """
        let p = try ChildProcess(["/bin/sh", "-c", script])
        let code = try await p.wait(timeout: .seconds(60))
        #expect(code == 0, "sh: \(p.stderr)")
        #expect(p.stdout == """
        first: 0 0 0
        again: 0 0 1
        other: 1 1 0
        status: succeeded
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
