import Foundation
import Kiln
import KilnRedis
import Testing

/// Payloads and results travel as the exact JSON text their producer wrote, by every way in:
/// a big integer keeps its last digit, numbers a `Double` cannot hold (`1e400`, `1.5e-400`) are
/// kept, and so are key order, spacing and escapes. `echo` returns its payload as its result.
@Suite struct PayloadPassThroughTests {
    let redis = TestRedis.shared
    static let edge = #"{"n":9007199254740993, "f":1e400,"g":[1.5e-400,-0.0,1E2],"s":"\u00e9\n","a":{"z":1,"b":2}}"#

    /// The `id` of each `--json` line (Foundation's parser refuses the lines: they hold 1e400).
    static func ids(_ stdout: String) -> [String] {
        stdout.split(separator: "\n").compactMap { line in
            guard line.hasPrefix(#"{"id":""#) else { return nil }
            return line.dropFirst(7).split(separator: "\"").first.map(String.init)
        }
    }

    @Test func batchLinesKeepThePayloadByteForByte() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let file = try HostileRecords.file(Array((#"{"type":"echo","payload":"# + Self.edge + "}\n" + #"{"payload":[1.5e-400],"type":"echo"}"# + "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let worker = try await cli.startWorker(["--processes", "0"])
        let r = try await cli.run(["enqueue", "--batch", file, "--wait", "--json"], timeout: .seconds(60))
        try await cli.stop(worker)
        #expect(r.code == 0, "\(r.stderr)")
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let ids = Self.ids(r.stdout)
        #expect(ids.count == 2)
        for (id, payload) in zip(ids, [Self.edge, "[1.5e-400]"]) {
            let rec = try await client.record(id)
            #expect(rec.payload == payload && rec.result == payload, "\(rec.json)")
        }
    }

    @Test func theCommandLineAndTheLibraryKeepItToo() async throws {
        let cli = KilnCLI(redis: redis, prefix: TestRedis.uniquePrefix())
        let worker = try await cli.startWorker(["--processes", "0"])
        let r = try await cli.run(["enqueue", "echo", Self.edge, "--wait", "--json"], timeout: .seconds(60))
        #expect(r.code == 0, "\(r.stderr)")
        let client = try redis.client(prefix: cli.prefix)
        defer { client.close() }
        let cliID = try #require(Self.ids(r.stdout).first)
        let libRecord = try await client.enqueue("echo", json: Self.edge).wait(timeout: .seconds(30))
        try await cli.stop(worker)
        for rec in [try await client.record(cliID), libRecord] {
            #expect(rec.status == .succeeded && rec.payload == Self.edge && rec.result == Self.edge, "\(rec.json)")
        }
    }

    @Test func batchLineFieldsAreCheckedOneByOne() throws {
        func parse(_ line: String) throws -> EnqueueRequest { try BatchReader.parse(line, defaults: JobOptions(), limit: 1 << 20) }
        #expect(try parse(#"{"type":"echo","payload":[1.5e-400]}"#).payload == "[1.5e-400]")
        #expect(try parse(#"{"typ\u0065":"echo"}"#).type == "echo")
        #expect(try parse(#" { "type" : "echo" , "payload" : { "a" : [ 1 , "}" ] } } "#).payload == #"{ "a" : [ 1 , "}" ] }"#)
        for (line, message) in [
            (#"{"type":"echo","type":"noop"}"#, "field 'type' appears twice"),
            (#"{"type":"echo","colour":"red"}"#, "unknown field 'colour'"),
            (#"{"type":"echo","retries":1e400}"#, "'retries' has a value this field cannot take"),
            (#"["type","echo"]"#, "not a JSON object"),
            (#"{"type":"echo","payload":}"#, "the line is not valid JSON"),
        ] {
            do {
                _ = try parse(line)
                Issue.record("accepted \(line)")
            } catch let e as KilnError {
                #expect(e.code == .invalidInput && e.message.contains(message), "\(line): \(e.message)")
            }
        }
    }
}
