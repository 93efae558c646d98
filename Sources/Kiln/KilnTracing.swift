import Tracing

/// Kiln's use of swift-distributed-tracing (docs/observability.md): a `kiln.enqueue` producer
/// span per enqueue call, whose W3C `traceparent` is stored with each job (record position 21),
/// and a `kiln.run` consumer span per attempt, whose parent is that stored context.
///
/// Resolved once per client or worker from the tracer given in its options, else
/// `InstrumentationSystem.tracer`. With the no-op tracer (nothing bootstrapped) there is no
/// `KilnTracing` at all: no span is started and nothing extra is written.
package struct KilnTracing: Sendable {
    package let tracer: any Tracer

    /// The tracing to use, or nil when `tracer` (else the global one) is the no-op tracer.
    package static func resolve(_ tracer: (any Tracer)?) -> KilnTracing? {
        let t = tracer ?? InstrumentationSystem.tracer
        if t is NoOpTracer { return nil }
        return KilnTracing(tracer: t)
    }

    /// The W3C `traceparent` the tracer writes for `context`, if it writes a well-formed one.
    package func traceparent(of context: ServiceContext) -> String? {
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: TraceCarrier())
        guard let tp = carrier[TraceParent.header], TraceParent.isValid(tp) else { return nil }
        return tp
    }

    /// A context holding the span context of `traceparent` (as the tracer extracts it), or a
    /// top-level one if there is none or it is malformed: a bad value from another producer is
    /// ignored quietly and never fails the job.
    package func context(continuing traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let traceparent, TraceParent.isValid(traceparent) else { return context }
        tracer.extract([TraceParent.header: traceparent], into: &context, using: TraceCarrier())
        return context
    }
}

/// Injects into and extracts from a `[String: String]` carrier (header name → value).
package struct TraceCarrier: Injector, Extractor {
    package init() {}
    package func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key.lowercased()] = value
    }
    package func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key.lowercased()]
    }
}

/// The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/), checked
/// the way a receiver must: `VERSION-TRACEID-PARENTID-FLAGS`, lowercase hex, trace id 32 and
/// parent id 16 digits, neither all zeros; version `ff` is invalid; version `00` is exactly 55
/// characters, a later version at least 55, followed by `-` if longer.
package enum TraceParent {
    package static let header = "traceparent"

    package static func isValid(_ value: String) -> Bool {
        let b = Array(value.utf8)
        guard b.count >= 55, b.count <= 256 else { return false }
        func hex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }
        func field(_ from: Int, _ count: Int) -> Bool { b[from..<(from + count)].allSatisfy(hex) }
        func zeros(_ from: Int, _ count: Int) -> Bool { b[from..<(from + count)].allSatisfy { $0 == 0x30 } }
        guard field(0, 2), b[2] == 0x2D, field(3, 32), b[35] == 0x2D, field(36, 16), b[52] == 0x2D, field(53, 2) else { return false }
        if b[0] == 0x66 && b[1] == 0x66 { return false }  // version ff
        if b[0] == 0x30 && b[1] == 0x30 && b.count != 55 { return false }
        if b.count > 55 && b[55] != 0x2D { return false }
        return !zeros(3, 32) && !zeros(36, 16)
    }
}
