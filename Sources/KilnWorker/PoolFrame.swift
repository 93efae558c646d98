/// The wire format between the worker and its pool children.
///
/// A frame is a 4-byte little-endian payload length followed by the payload. A request payload
/// carries a ``PoolRequest`` (a tag byte: 0 a ``PoolJob`` to run, 1 a drop of a job not started
/// yet); a response payload carries a ``PoolOutcome``. The child answers every job request with
/// exactly one response, in order. Inside a payload, strings
/// are a 4-byte little-endian byte count plus UTF-8 bytes and integers are 8-byte little-endian.
/// Anything that does not decode exactly (short, trailing bytes, bad tag, oversized) is a
/// ``PoolFrameError``; the pool treats the child that sent it as crashed.
package enum PoolFrame {
    /// Largest payload accepted (256 MiB); a larger length prefix is treated as garbage.
    package static let maxPayloadLength = 256 << 20
    /// Size of the length prefix.
    package static let headerLength = 4

    /// The complete frame (length prefix + payload) for a request to run `job`.
    package static func encode(_ job: PoolJob) -> [UInt8] { encode(.run(job)) }

    /// The complete frame (length prefix + payload) for a request.
    package static func encode(_ request: PoolRequest) -> [UInt8] {
        var w = Writer()
        switch request {
        case .run(let job):
            w.byte(0)
            w.string(job.id)
            w.string(job.type)
            w.string(job.queue)
            w.string(job.payload)
            w.int(Int64(job.attempt))
            w.int(Int64(job.maxAttempts))
            w.int(job.timeoutMs)
        case .drop(let id, let queue):
            w.byte(1)
            w.string(id)
            w.string(queue)
        }
        return w.frame()
    }

    /// The complete frame (length prefix + payload) for a response.
    package static func encode(_ outcome: PoolOutcome) -> [UInt8] {
        var w = Writer()
        switch outcome {
        case .succeeded(let result):
            w.byte(0)
            w.string(result)
        case .failed(let type, let message, let retryable):
            w.byte(1)
            w.string(type)
            w.string(message)
            w.byte(retryable ? 1 : 0)
        case .crashed(let reason):
            w.byte(2)
            w.string(reason)
        case .killed:
            w.byte(3)
        case .dropped:
            w.byte(4)
        }
        return w.frame()
    }

    /// Decodes a request payload (without the length prefix) that must be a job to run.
    package static func decodeJob(_ payload: [UInt8]) throws(PoolFrameError) -> PoolJob {
        guard case .run(let job) = try decodeRequest(payload) else { throw .malformed("a drop request, not a job") }
        return job
    }

    /// Decodes a request payload (without the length prefix).
    package static func decodeRequest(_ payload: [UInt8]) throws(PoolFrameError) -> PoolRequest {
        var r = Reader(bytes: payload)
        let request: PoolRequest
        switch try r.byte() {
        case 0:
            request = .run(PoolJob(
                id: try r.string(), type: try r.string(), queue: try r.string(), payload: try r.string(),
                attempt: Int(try r.int()), maxAttempts: Int(try r.int()), timeoutMs: try r.int()))
        case 1:
            request = .drop(id: try r.string(), queue: try r.string())
        case let tag: throw .malformed("unknown request tag \(tag)")
        }
        try r.end()
        return request
    }

    /// Decodes a response payload (without the length prefix).
    package static func decodeOutcome(_ payload: [UInt8]) throws(PoolFrameError) -> PoolOutcome {
        var r = Reader(bytes: payload)
        let outcome: PoolOutcome
        switch try r.byte() {
        case 0: outcome = .succeeded(try r.string())
        case 1:
            let type = try r.string()
            let message = try r.string()
            switch try r.byte() {
            case 0: outcome = .failed(type: type, message: message, retryable: false)
            case 1: outcome = .failed(type: type, message: message, retryable: true)
            default: throw .malformed("bad retryable flag")
            }
        case 2: outcome = .crashed(try r.string())
        case 3: outcome = .killed
        case 4: outcome = .dropped
        case let tag: throw .malformed("unknown outcome tag \(tag)")
        }
        try r.end()
        return outcome
    }

    /// The payload length announced by a 4-byte header, validated against ``maxPayloadLength``.
    package static func payloadLength(header: some Collection<UInt8>) throws(PoolFrameError) -> Int {
        guard header.count == headerLength else { throw .malformed("short header") }
        var n: UInt32 = 0
        for (i, b) in header.enumerated() { n |= UInt32(b) << (8 * UInt32(i)) }
        guard Int(n) <= maxPayloadLength else { throw .malformed("frame of \(n) bytes is too large") }
        return Int(n)
    }

    struct Writer {
        var bytes: [UInt8] = [0, 0, 0, 0]

        mutating func byte(_ b: UInt8) { bytes.append(b) }

        mutating func u32(_ v: UInt32) {
            for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
        }

        mutating func int(_ v: Int64) {
            let u = UInt64(bitPattern: v)
            for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: u >> (8 * UInt64(i)))) }
        }

        mutating func string(_ s: String) {
            let utf8 = Array(s.utf8)
            u32(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }

        /// Fills in the length prefix and returns the frame.
        func frame() -> [UInt8] {
            var out = bytes
            let n = UInt32(out.count - 4)
            for i in 0..<4 { out[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(i))) }
            return out
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var pos = 0

        mutating func take(_ n: Int) throws(PoolFrameError) -> ArraySlice<UInt8> {
            guard n >= 0, bytes.count - pos >= n else { throw .malformed("truncated payload") }
            defer { pos += n }
            return bytes[pos..<(pos + n)]
        }

        mutating func byte() throws(PoolFrameError) -> UInt8 { try take(1).first! }

        mutating func u32() throws(PoolFrameError) -> UInt32 {
            var v: UInt32 = 0
            for (i, b) in try take(4).enumerated() { v |= UInt32(b) << (8 * UInt32(i)) }
            return v
        }

        mutating func int() throws(PoolFrameError) -> Int64 {
            var v: UInt64 = 0
            for (i, b) in try take(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
            return Int64(bitPattern: v)
        }

        mutating func string() throws(PoolFrameError) -> String {
            let n = Int(try u32())
            let raw = try take(n)
            guard let s = String(validating: raw, as: UTF8.self) else { throw .malformed("invalid UTF-8") }
            return s
        }

        func end() throws(PoolFrameError) {
            guard pos == bytes.count else { throw .malformed("\(bytes.count - pos) trailing bytes") }
        }
    }
}

/// A frame that could not be decoded or read completely.
package enum PoolFrameError: Error, Sendable, Equatable {
    /// The bytes do not form a valid frame.
    case malformed(String)
    /// The stream ended in the middle of a frame.
    case truncated
    /// A read or write on the pipe failed with this errno.
    case io(Int32)
}

/// Collects bytes read piecemeal from a pipe and hands out complete frame payloads.
struct PoolFrameBuffer {
    private var buffer: [UInt8] = []

    mutating func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }

    /// True if some bytes of an incomplete frame are buffered.
    var hasPartialFrame: Bool { !buffer.isEmpty }

    /// The next complete payload, if one has fully arrived.
    mutating func nextPayload() throws(PoolFrameError) -> [UInt8]? {
        guard buffer.count >= PoolFrame.headerLength else { return nil }
        let n = try PoolFrame.payloadLength(header: buffer[0..<PoolFrame.headerLength])
        guard buffer.count >= PoolFrame.headerLength + n else { return nil }
        let payload = Array(buffer[PoolFrame.headerLength..<(PoolFrame.headerLength + n)])
        buffer.removeFirst(PoolFrame.headerLength + n)
        return payload
    }
}
