import Foundation
import Kiln
import KilnRedis
import KilnWorker

/// One fuzz target: a function from arbitrary bytes to "returned normally". Anything that traps
/// (a Swift runtime check, a `precondition` on an invariant below, or a sanitizer report) is a crash.
enum FuzzTarget: String, CaseIterable, Sendable {
    case duration, url, record, envelope, resp, batch, json, jobid

    var summary: String {
        switch self {
        case .duration: return "KilnDuration.parse / format, BatchReader.duration"
        case .url: return "RedisConfiguration(url:), .address, .description"
        case .record: return "JobRecord(fields:id:queue:) + .json (a v3 get reply: fields split on NUL)"
        case .envelope: return "KilnStore.fetchedJobs + envelopeProblem (a v3 fetch reply, 8 per job: fields split on NUL)"
        case .resp: return "hiredis reader + HiredisContext.convert (raw RESP bytes)"
        case .batch: return "BatchReader.parse (one line) and BatchReader.read (a file)"
        case .json: return "JSONText.validate / isValid / quote"
        case .jobid: return "JobID.isValid"
        }
    }

    func run(_ data: [UInt8]) {
        switch self {
        case .duration: Self.duration(data)
        case .url: Self.url(data)
        case .record: Self.record(data)
        case .envelope: Self.envelope(data)
        case .resp: Self.resp(data)
        case .batch: Self.batch(data)
        case .json: Self.json(data)
        case .jobid: Self.jobid(data)
        }
    }

    static func text(_ data: [UInt8]) -> String { String(decoding: data, as: UTF8.self) }

    /// Fields separated by NUL bytes. A field starting with 0x01 becomes a Redis null, with 0x02
    /// an integer (the rest parsed, else 0), with 0x03 an array of the rest's bytes as bulk
    /// strings: the odd shapes a hand-edited hash or a buggy script could produce.
    static func fields(_ data: [UInt8]) -> [RedisValue] {
        data.split(separator: 0, omittingEmptySubsequences: false).map { f -> RedisValue in
            switch f.first {
            case 1: return .null
            case 2: return .integer(Int(text(Array(f.dropFirst()))) ?? 0)
            case 3: return .array(f.dropFirst().map { .bulk(String(UnicodeScalar($0))) })
            default: return .bulk(text(Array(f)))
            }
        }
    }

    static func duration(_ data: [UInt8]) {
        let s = text(data)
        if let d = try? KilnDuration.parse(s) {
            let ms = KilnDuration.milliseconds(d)
            precondition(ms >= 0 && ms <= 10 * 365 * 86_400_000, "duration out of range: \(ms)")
            _ = KilnDuration.format(d)
        }
        _ = try? BatchReader.duration(.string(s), "timeout")
        if let n = Double(s) { _ = try? BatchReader.duration(.number(n), "timeout") }
    }

    static func url(_ data: [UInt8]) {
        let s = text(data)
        guard let c = try? RedisConfiguration(url: s) else { return }
        precondition(c.database >= 0)
        if case .tcp(let host, let port) = c.endpoint {
            precondition(!host.isEmpty && (1...65535).contains(port))
        }
        _ = c.address
        // The log form must not depend on the password at all (it shows `***`).
        if c.password != nil {
            var other = c
            other.password = "x"
            precondition(c.description == other.description, "description shows the password")
        }
    }

    /// The `get` script's reply for one id (protocol v3): field, value pairs, all text, as
    /// `KilnStore.records` hands them to `JobRecord(fields:id:queue:)`. A hostile or newer record
    /// can put anything in any value (`tostring` of whatever MessagePack held: "nil", "1e+14",
    /// "table: 0x…"), so every value is fuzzed, names included.
    static func record(_ data: [UInt8]) {
        guard let r = JobRecord(fields: .array(fields(data)), id: "fuzz-id", queue: "fuzz") else { return }
        precondition(r.id == "fuzz-id" && r.queue == "fuzz", "JobRecord took id or queue from the reply")
        let json = r.json
        precondition(JSONText.isValid(json), "JobRecord.json is not valid JSON: \(json.prefix(200))")
        precondition(!json.utf8.contains(0x0A) && !json.utf8.contains(0x0D), "JobRecord.json spans lines: \(json.prefix(200))")
        _ = r.isFinal
    }

    static func envelope(_ data: [UInt8]) {
        _ = EnvelopeFuzzing.check(.array(fields(data)))
        _ = EnvelopeFuzzing.check(data.split(separator: 0, omittingEmptySubsequences: false).map { text(Array($0)) })
    }

    /// Whether the bytes hold a multi-bulk header (`*N`) over 2^20 elements. hiredis 0.14.1
    /// callocs N pointers as soon as it reads the header (`*922337201` is 7.4 GB): lazily mapped,
    /// so harmless in production, but over libFuzzer's malloc limit and very slow under ASan.
    /// Real Redis never sends such a header; see docs/testing.md.
    static func declaresHugeArray(_ data: [UInt8]) -> Bool {
        var i = 0
        while i < data.count {
            if data[i] == UInt8(ascii: "*") {
                var n = 0
                var j = i + 1
                while j < data.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[j]), n <= 1 << 20 {
                    n = n * 10 + Int(data[j] - UInt8(ascii: "0"))
                    j += 1
                }
                if n > 1 << 20 { return true }
            }
            i += 1
        }
        return false
    }

    static func resp(_ data: [UInt8]) {
        if declaresHugeArray(data) { return }
        let replies = RESPFuzzing.parse(data)
        // Fed in small pieces, as replies arrive from a socket, the reader must agree.
        precondition(RESPFuzzing.parse(data, chunk: data.count % 7 + 1) == replies, "chunked feed differs")
        for v in replies {
            _ = v.description
            _ = v.string
            _ = v.int
            // The same reply as a job record and as a fetch reply: what the client does with it.
            if let r = JobRecord(fields: v, id: "fuzz-id", queue: "fuzz") { _ = r.json }
            _ = EnvelopeFuzzing.check(v)
        }
    }

    static let batchFile: String = {
        NSTemporaryDirectory() + "/kiln-fuzz-batch-\(ProcessInfo.processInfo.processIdentifier).jsonl"
    }()

    static func batch(_ data: [UInt8]) {
        let s = text(data)
        _ = try? BatchReader.parse(s, defaults: JobOptions(), limit: 4096)
        if FileManager.default.createFile(atPath: batchFile, contents: Data(data)) {
            _ = try? BatchReader.read(batchFile, defaults: JobOptions(), limit: 4096)
        }
    }

    static func json(_ data: [UInt8]) {
        let s = text(data)
        if JSONText.isValid(s) { precondition((try? JSONText.validate(s)) != nil) }
        let q = JSONText.quote(s)
        precondition(JSONText.isValid(q), "quote() produced invalid JSON")
        if let back = try? JSONText.decode(String.self, from: q) {
            precondition(back == s, "quote() does not round-trip")
        } else {
            preconditionFailure("quote() output does not decode as a string")
        }
    }

    static func jobid(_ data: [UInt8]) {
        let s = text(data)
        if JobID.isValid(s) {
            precondition(!s.isEmpty && s.utf8.count <= 128)
            precondition(!s.contains(where: { "{}:*?[]\\ ".contains($0) }))
        }
        precondition(JobID.isValid(JobID.make()))
    }
}
