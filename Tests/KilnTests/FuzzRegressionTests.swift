import Foundation
import Kiln
import KilnRedis
import KilnWorker
import KilnFuzz
import Testing

/// Inputs from fuzzing the parsers (`make fuzz`, docs/testing.md): each must come back as a value
/// or an error, never a trap. The first suite holds the one slow input fuzzing found.
@Suite struct FuzzRegressionTests {
    static func nested(_ depth: Int, open: String, close: String, leaf: String = "") -> String {
        String(repeating: open, count: depth) + leaf + String(repeating: close, count: depth)
    }

    // Found fuzzing BatchReader: JSONValue tried Bool, Double and String before arrays at every
    // level, and each failed attempt costs time proportional to the depth, so a 511-deep payload
    // (JSONDecoder's limit) took ~2.5 s per line in release and ~20 s in a debug build.
    @Test func deeplyNestedBatchPayloadIsFast() throws {
        let line = #"{"type":"t","payload":"# + Self.nested(511, open: "[", close: "]") + "}"
        let clock = ContinuousClock()
        var request: EnqueueRequest?
        let elapsed = try clock.measure {
            request = try BatchReader.parse(line, defaults: JobOptions(), limit: 1 << 20)
        }
        #expect(request?.payload == Self.nested(511, open: "[", close: "]"))
        #expect(elapsed < .seconds(2), "511-deep payload took \(elapsed)")
    }

    @Test func deeplyNestedObjectsStillDecode() throws {
        let payload = Self.nested(200, open: #"{"k":"#, close: "}", leaf: "[true,1.5,\"s\",null]")
        let r = try BatchReader.parse(#"{"type":"t","payload":"# + payload + "}", defaults: JobOptions(), limit: 1 << 20)
        #expect(r.payload == payload)
        // Over JSONDecoder's depth limit: an error, not a stack overflow.
        #expect(throws: KilnError.self) {
            try BatchReader.parse(#"{"type":"t","payload":"# + Self.nested(5000, open: "[", close: "]") + "}",
                                  defaults: JobOptions(), limit: 1 << 20)
        }
    }

    @Test func batchScalarsKeepTheirTypes() throws {
        let r = try BatchReader.parse(#"{"type":"t","retries":2,"timeout":1.5,"payload":[true,1,"x",null,{"a":false}]}"#,
                                      defaults: JobOptions(), limit: 1 << 20)
        #expect(r.options.retries == 2 && r.options.timeout == .milliseconds(1500))
        #expect(r.payload == #"[true,1,"x",null,{"a":false}]"#)
        #expect(throws: KilnError.self) { try BatchReader.parse(#"{"type":"t","retries":true}"#, defaults: JobOptions(), limit: 1 << 20) }
    }

    @Test(arguments: [
        "", " ", "\n", "[]", "null", "{}", #"{"type":1}"#, #"{"type":"t","timeout":1e999}"#, #"{"type":"t","timeout":-1}"#,
        #"{"type":"t","timeout":"1e3"}"#, #"{"type":"t","retries":1e300}"#, #"{"type":"t","retries":NaN}"#,
        #"{"type":"t","kind":"gpu"}"#, #"{"type":"t","payload":[1e999]}"#, #"{"type":"t""#, "{\"type\":\"t\"}\u{0}",
        #"{"type":"t","type":"u"}"#, #"{"type":"t","id":5}"#, #"{"type":"t","bogus":1}"#, "\u{FEFF}{}",
    ])
    func batchLinesFailCleanly(_ line: String) {
        _ = try? BatchReader.parse(line, defaults: JobOptions(), limit: 1 << 20)
    }

    @Test func batchFilesWithOddLines() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("b.jsonl").path
        try Data("{\"type\":\"a\"}\r\n\r\n  {\"type\":\"b\"}  \n\u{FF}".utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: KilnError.self) { try BatchReader.read(file, defaults: JobOptions(), limit: 1024) }
        try Data([0xFF, 0xFE, 0x00]).write(to: URL(fileURLWithPath: file))
        #expect(throws: KilnError.self) { try BatchReader.read(file, defaults: JobOptions(), limit: 1024) }
        try Data("{\"type\":\"a\"}\r\n\n{\"type\":\"b\"}".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try BatchReader.read(file, defaults: JobOptions(), limit: 1024).map(\.type) == ["a", "b"])
    }

    @Test(arguments: [
        "١s", "½h", "Ⅻm", "1\u{301}s", "5s\u{301}", "0x10", "inf", "nan", "1e400", ".", "..", "ms ms", "\u{0}5s",
        "315360001", "87601h", "5256001m", "99999999999999999999999999999ms", String(repeating: "9", count: 400),
    ])
    func durationsFailCleanly(_ text: String) {
        #expect(throws: KilnError.self) { try KilnDuration.parse(text) }
    }

    @Test func durationEdges() throws {
        #expect(try KilnDuration.parse("315360000") == .seconds(315_360_000))
        #expect(try KilnDuration.parse("0.0004ms") == .zero)
        // Not a crash, so left alone: format() of 1234.568 s prints "1.23e+03s", which parse() rejects.
        _ = KilnDuration.format(try KilnDuration.parse("1234.5678"))
        #expect(throws: KilnError.self) { try BatchReader.duration(.number(.nan), "timeout") }
        #expect(throws: KilnError.self) { try BatchReader.duration(.number(.infinity), "timeout") }
        #expect(throws: KilnError.self) { try BatchReader.duration(.bool(true), "timeout") }
    }

    @Test(arguments: [
        "", "redis:", "redis://", "redis://@", "redis://:@", "redis://[", "redis://[]", "redis://[::1",
        "redis://h:", "redis://h:-1", "redis://h:+", "redis://h:65536", "redis://h/-1", "redis://h/1048576",
        "redis://h/99999999999999999999", "redis://h:1:2:3x", "unix://", "unix://?db=1", "unix:///s?db=x",
        "unix:///s?bogus=1", "REDIS://h", "redis:/h", "\u{0}redis://h",
    ])
    func urlsFailCleanly(_ url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }

    @Test func oddButAcceptedURLsNeverShowThePassword() throws {
        // (A bad percent-escape, as in "redis://u:p%zz@h", is refused since issue 10: HostileInputTests.)
        for url in ["redis://:redis://@K", "redis://a@b@c:5/", "unix:///s?password=p%20w&&=&db=0",
                    "redis://u:@h", "redis://[::1]x", "redis://]:1"] {
            let c = try RedisConfiguration(url: url)
            var other = c
            other.password = c.password == nil ? nil : "x"
            #expect(c.description == other.description, "\(url)")
        }
    }

    /// Protocol v3 records as the `get` script hands them out (field, value pairs, all text):
    /// odd counts, nulls and nested arrays where text belongs, and what Lua's `tostring` makes of
    /// values a hostile producer packed (`nil`, `1e+14`, `table: 0x…`).
    @Test func recordsFromOddGetReplies() throws {
        let odd: [RedisValue] = [
            .array([.bulk("format")]),  // odd count
            .array([.null, .bulk("x"), .integer(5), .array([]), .bulk("status"), .null]),
            .array([.bulk("payload"), .bulk("not json"), .bulk("result"), .bulk("\"\\ud800\""),
                    .bulk("error_type"), .bulk("t\u{0}\u{1F}"), .bulk("attempts"), .bulk("99999999999999999999"),
                    .bulk("timeout_ms"), .bulk("-9223372036854775808"), .bulk("worker"), .bulk("\u{7F}\u{2028}")]),
            .array([.bulk("kind"), .bulk("gpu"), .bulk("status"), .bulk(""), .bulk("payload"), .bulk(" 1 ")]),
            .array(["format", "3", "status", "running", "type", "nil", "kind", "nil", "payload", "table: 0x7f00",
                    "attempts", "nil", "max_attempts", "1.5", "token", "-nan", "timeout_ms", "1e+14", "result_ttl_ms", "inf",
                    "enqueued_at", "1e+23", "started_at", "-1", "finished_at", "nil", "flags", "3", "retried_at", "true"].map { .bulk($0) }),
            .array(["status", "failed", "error_type", "malformed_envelope", "error_message", "record is not a version 3 record"].map { .bulk($0) }),
        ]
        for fields in odd {
            let r = try #require(JobRecord(fields: fields, id: "x", queue: "q"))
            #expect(r.id == "x" && r.queue == "q")
            #expect(JSONText.isValid(r.json), "\(r.json)")
        }
        let tostrings = try #require(JobRecord(fields: odd[4], id: "x", queue: "q"))
        #expect(tostrings.timeoutMs == 0 && tostrings.enqueuedAt == nil && tostrings.startedAt == nil && tostrings.cancelRequested)
        #expect(JobRecord(fields: .array([]), id: "x", queue: "q") == nil)  // no such job
        #expect(JobRecord(fields: .null, id: "x", queue: "q") == nil)
        #expect(JobRecord(fields: .error("ERR"), id: "x", queue: "q") == nil)
    }

    /// `fetch` replies (protocol v3: 8 fields per job, id, token, attempt, type, payload, kind,
    /// max_attempts, timeout_ms) as the worker splits and checks them.
    @Test func envelopesFromOddReplies() {
        let good = ["id", "1", "1", "t", "{}", "io", "3", "1000"]
        #expect(EnvelopeFuzzing.check(good) == [nil])
        #expect(EnvelopeFuzzing.check(Array(good.prefix(7))).isEmpty)  // short reply: no job
        #expect(EnvelopeFuzzing.check(good + good + ["extra"]) == [nil, nil])  // a partial job at the end is dropped
        #expect(EnvelopeFuzzing.check(["id", "tok", "x", "", "{", "gpu", "y", "-1"]).first??.contains("type") == true)
        #expect(EnvelopeFuzzing.check(["id", "1", "1", "t", "{", "io", "1", "9223372036854775808"]).first??.contains("timeout_ms") == true)
        #expect(EnvelopeFuzzing.check(["id", "1", "1", "t", "{", "io", "1", "0"]).first??.contains("positive") == true)
        #expect(EnvelopeFuzzing.check(["id", "1", "1", "t", "{", "io", "1", "5"]).first??.contains("payload") == true)
        #expect(EnvelopeFuzzing.check(["id", "1", "1", "t", "{}", "\u{0}", "1", "5"]).first??.contains("kind") == true)
        #expect(EnvelopeFuzzing.check(["id", "1", "1", "t", "{}", "io", "1", "1e+14"]).first??.contains("timeout_ms") == true)
        #expect(EnvelopeFuzzing.check(.array([.null, .integer(1), .array([]), .bulk("t"), .bulk("1"), .status("cpu"),
                                              .error("x"), .integer(7)])) == [nil])
        #expect(EnvelopeFuzzing.check(.error("ERR")).isEmpty)
    }

    @Test func respRepliesFromRawBytes() {
        #expect(RESPFuzzing.parse(Array("+OK\r\n:-9223372036854775808\r\n$-1\r\n*0\r\n".utf8))
                == [.status("OK"), .integer(.min), .null, .array([])])
        #expect(RESPFuzzing.parse(Array("*2\r\n$1\r\na\r\n*1\r\n-ERR x\r\n".utf8)) == [.array([.bulk("a"), .array([.error("ERR x")])])])
        #expect(RESPFuzzing.parse([0x24, 0x32, 0x0D, 0x0A, 0xFF, 0x00, 0x0D, 0x0A]) == [.bytes([0xFF, 0x00])])
        // Protocol errors and partial replies: nothing, not a trap.
        for bad in ["*-2\r\n", "$-2\r\n", "*2147483648\r\n", ":1x\r\n", "$3\r\nab", "?\r\n", "*1\r\n", "$9223372036854775807\r\n",
                    String(repeating: "*1\r\n", count: 9) + ":1\r\n", "+OK\n", ""] {
            #expect(RESPFuzzing.parse(Array(bad.utf8)).count <= 1, "\(bad.debugDescription)")
        }
        #expect(RESPFuzzing.parse(Array("*-2\r\n".utf8)) == [])
        // A large but incomplete multi-bulk header: hiredis reserves the pointers and waits.
        #expect(RESPFuzzing.parse(Array("*1048576\r\n:1\r\n".utf8)) == [])
    }

    @Test func respFedInPiecesAgrees() {
        let bytes = Array("*3\r\n$5\r\nhello\r\n:-7\r\n*1\r\n$-1\r\n+OK\r\n-ERR no\r\n$3\r\nab".utf8)
        let whole = RESPFuzzing.parse(bytes)
        #expect(whole == [.array([.bulk("hello"), .integer(-7), .array([.null])]), .status("OK"), .error("ERR no")])
        for chunk in 1...8 { #expect(RESPFuzzing.parse(bytes, chunk: chunk) == whole, "chunk \(chunk)") }
    }

    @Test(arguments: ["", " ", "\u{0}", "[" + String(repeating: "[", count: 100_000), "\"\\ud800\"x", "{\"a\":1,}", "1 2", "\u{FEFF}1"])
    func jsonTextFailsCleanly(_ text: String) {
        _ = JSONText.isValid(text)
        _ = try? JSONText.validate(text, what: "payload")
    }

    @Test(arguments: ["", "a\u{0}b", "\u{1F}\u{7F}\u{2028}\"\\", "\u{FFFD}", "é\u{301}", "🧪"])
    func quoteRoundTrips(_ s: String) throws {
        let q = JSONText.quote(s)
        #expect(JSONText.isValid(q))
        #expect(try JSONText.decode(String.self, from: q) == s)
    }

    @Test func jobIDEdges() {
        #expect(JobID.isValid(String(repeating: "x", count: 128)))
        #expect(!JobID.isValid(String(repeating: "x", count: 129)))
        #expect(!JobID.isValid(String(repeating: "é", count: 1)))
        for bad in ["", " ", "a b", "a:b", "{q}", "a*", "a?", "[a]", "a\\b", "a\u{0}", "a\u{7F}", "a\u{301}"] {
            #expect(!JobID.isValid(bad), "\(bad.debugDescription)")
        }
    }
}
