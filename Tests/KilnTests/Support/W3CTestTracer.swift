import InMemoryTracing
import Synchronization
import Tracing

/// swift-distributed-tracing's `InMemoryTracer` (spans kept in memory, for assertions) that
/// propagates its span context as a W3C `traceparent`, as a real tracer (swift-otel) does: its
/// trace ids are 32 and span ids 16 lowercase hex digits, `inject` writes `traceparent`, and
/// `extract` reads it back (a malformed value is ignored).
struct W3CTestTracer: Tracer {
    typealias Span = InMemorySpan
    let inner: InMemoryTracer

    init() {
        let counter = Atomic<UInt64>(0)
        @Sendable func next(_ digits: Int) -> String {
            let n = counter.add(1, ordering: .relaxed).newValue
            let hex = String(n &* 0x9E37_79B9_7F4A_7C15 | 1, radix: 16)
            return String(repeating: "0", count: max(0, digits - hex.count)) + hex.suffix(digits)
        }
        inner = InMemoryTracer(idGenerator: .init(nextTraceID: { next(32) }, nextSpanID: { next(16) }))
    }

    var finishedSpans: [FinishedInMemorySpan] { inner.finishedSpans }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        inner.startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    func forceFlush() { inner.forceFlush() }

    func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        guard let s = context.inMemorySpanContext else { return }
        injector.inject("00-\(s.traceID)-\(s.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        guard let tp = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = tp.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(traceID: String(parts[1]), spanID: String(parts[2]), parentSpanID: nil)
    }
}
