import Foundation

/// The job types a worker can run, each declared `io` (async, runs on the worker's async loop) or
/// `cpu` (synchronous, runs in a child process of the worker's pool).
///
/// ```swift
/// var jobs = JobRegistry()
/// jobs.io("email.send", payload: Email.self) { email, ctx in try await send(email); return Sent() }
/// jobs.cpu("thumbnail", payload: Image.self) { image, ctx in try render(image) }
/// ```
/// Payloads are decoded from JSON with `Decodable`, results encoded with `Encodable`. A payload
/// that does not decode fails the job (`bad_payload`) without retries.
public struct JobRegistry: Sendable {
    /// A handler working on JSON text: payload in, result out.
    package enum Handler: Sendable {
        case io(@Sendable (String, JobContext) async throws -> String)
        case cpu(@Sendable (String, JobContext) throws -> String)

        package var kind: JobKind {
            switch self {
            case .io: return .io
            case .cpu: return .cpu
            }
        }
    }

    package var handlers: [String: Handler] = [:]

    /// An empty registry.
    public init() {}

    /// The handler for a job type.
    package func handler(for type: String) -> Handler? { handlers[type] }

    /// The kind a job type runs as, if registered.
    public func kind(of type: String) -> JobKind? { handlers[type]?.kind }

    /// Registers a raw async handler (JSON text in, JSON text out).
    public mutating func ioRaw(_ type: String, _ body: @escaping @Sendable (String, JobContext) async throws -> String) {
        handlers[type] = .io(body)
    }

    /// Registers a raw synchronous CPU handler (JSON text in, JSON text out).
    public mutating func cpuRaw(_ type: String, _ body: @escaping @Sendable (String, JobContext) throws -> String) {
        handlers[type] = .cpu(body)
    }

    /// Registers an async I/O job with a typed payload and result.
    public mutating func io<Payload: Decodable, Result: Encodable>(
        _ type: String, payload: Payload.Type = Payload.self,
        _ body: @escaping @Sendable (Payload, JobContext) async throws -> Result
    ) {
        handlers[type] = .io { text, ctx in
            let p = try Self.decodePayload(Payload.self, text, type: type)
            return try JSONText.encode(try await body(p, ctx))
        }
    }

    /// Registers a synchronous CPU job with a typed payload and result; it runs in the pool.
    public mutating func cpu<Payload: Decodable, Result: Encodable>(
        _ type: String, payload: Payload.Type = Payload.self,
        _ body: @escaping @Sendable (Payload, JobContext) throws -> Result
    ) {
        handlers[type] = .cpu { text, ctx in
            let p = try Self.decodePayload(Payload.self, text, type: type)
            return try JSONText.encode(try body(p, ctx))
        }
    }

    /// Decodes a payload, turning decoding errors into a non-retryable `bad_payload` failure.
    package static func decodePayload<P: Decodable>(_: P.Type, _ text: String, type: String) throws -> P {
        do {
            return try JSONText.decode(P.self, from: text)
        } catch let e as DecodingError {
            throw JobFailure("payload for '\(type)' could not be decoded: \(describe(e))", type: "bad_payload", retryable: false)
        } catch {
            throw JobFailure("payload for '\(type)' could not be decoded: \(error)", type: "bad_payload", retryable: false)
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String {
            c.isEmpty ? "the top level" : c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing field '\(path(ctx.codingPath + [k]))'"
        case .typeMismatch(let t, let ctx): return "expected \(t) at \(path(ctx.codingPath))"
        case .valueNotFound(let t, let ctx): return "expected \(t) at \(path(ctx.codingPath)), found null"
        case .dataCorrupted(let ctx): return "\(ctx.debugDescription) at \(path(ctx.codingPath))"
        @unknown default: return "\(e)"
        }
    }
}
