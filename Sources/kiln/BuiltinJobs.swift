import AsyncHTTPClient
import Crypto
import Foundation
import Kiln

/// The job types `kiln worker` runs out of the box.
enum BuiltinJobs {
    struct SleepPayload: Decodable { var ms: Int }
    struct SleepResult: Encodable { var slept_ms: Int }
    struct HTTPPayload: Decodable { var url: String }
    struct HTTPResult: Encodable { var status: Int; var bytes: Int; var ms: Int }
    struct FailPayload: Decodable { var message: String? }
    struct SpinPayload: Decodable { var n: Int }
    struct SpinResult: Encodable { var n: Int; var value: UInt64 }
    struct HashPayload: Decodable { var data: String?; var path: String? }
    struct HashResult: Encodable { var sha256: String }

    static func registry() -> JobRegistry {
        var r = JobRegistry()
        r.ioRaw("noop") { _, _ in "null" }
        r.ioRaw("echo") { payload, _ in payload }
        r.io("sleep", payload: SleepPayload.self) { p, _ in
            guard p.ms >= 0 else { throw JobFailure("'ms' must not be negative", type: "bad_payload", retryable: false) }
            try await Task.sleep(for: .milliseconds(p.ms))
            return SleepResult(slept_ms: p.ms)
        }
        r.io("http.get", payload: HTTPPayload.self) { p, ctx in
            guard let url = URL(string: p.url), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw JobFailure("'url' must be an absolute http or https URL", type: "bad_payload", retryable: false)
            }
            let start = ContinuousClock.now
            let request = HTTPClientRequest(url: p.url)
            let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(KilnDuration.milliseconds(ctx.timeout))))
            var bytes = 0
            for try await chunk in response.body { bytes += chunk.readableBytes }
            return HTTPResult(status: Int(response.status.code), bytes: bytes, ms: Int(KilnDuration.milliseconds(ContinuousClock.now - start)))
        }
        r.io("fail", payload: FailPayload?.self) { p, _ -> String in
            throw JobFailure(p?.message ?? "the fail job failed, as asked")
        }
        r.cpu("cpu.spin", payload: SpinPayload.self) { p, _ in
            guard p.n >= 0 else { throw JobFailure("'n' must not be negative", type: "bad_payload", retryable: false) }
            return SpinResult(n: p.n, value: spin(p.n))
        }
        r.cpu("sha256", payload: HashPayload.self) { p, _ in
            var h = SHA256()
            if let data = p.data {
                h.update(data: Array(data.utf8))
            } else if let path = p.path {
                guard let stream = InputStream(fileAtPath: path) else {
                    throw JobFailure("cannot open '\(path)'", type: "bad_payload", retryable: false)
                }
                stream.open()
                defer { stream.close() }
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = stream.read(&buf, maxLength: buf.count)
                    if n < 0 { throw JobFailure("cannot read '\(path)'", type: "error", retryable: false) }
                    if n == 0 { break }
                    buf[0..<n].withUnsafeBytes { h.update(bufferPointer: $0) }
                }
            } else {
                throw JobFailure("payload needs 'data' or 'path'", type: "bad_payload", retryable: false)
            }
            return HashResult(sha256: h.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
        }
        r.cpuRaw("cpu.crash") { _, _ in
            abort()
        }
        return r
    }

    /// A counting loop the optimizer cannot fold: each step depends on the last (xorshift).
    static func spin(_ n: Int) -> UInt64 {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<n {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
        }
        return x
    }

    /// Kinds of the built-ins, for producers that enqueue them.
    static let kinds: [String: JobKind] = Dictionary(uniqueKeysWithValues: registry().handlers.map { ($0.key, $0.value.kind) })
}
