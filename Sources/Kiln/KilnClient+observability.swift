import Metrics
import Tracing

/// A client's enqueue metrics and spans (docs/observability.md): `kiln_jobs_enqueued_total`
/// per queue and type, and one `kiln.enqueue` producer span per `enqueueBatch` call whose
/// `traceparent` every job of the call stores. Both are off (no work at all) with the no-op
/// backends.
struct ClientObservability: Sendable {
    let enqueued: MetricsCache<Counter>?
    let tracing: KilnTracing?

    init(_ options: KilnClientOptions) {
        enqueued = kilnMetricsFactory(options.metricsFactory).map { factory in
            MetricsCache { Counter(label: KilnMetricNames.enqueued, dimensions: $0, factory: factory) }
        }
        tracing = KilnTracing.resolve(options.tracer)
    }

    /// Runs `write` (which enqueues `requests`, each job storing the traceparent it is given)
    /// inside a `kiln.enqueue` span when there is a tracer, and counts the jobs it enqueued.
    func enqueue(_ requests: [EnqueueRequest], write: (_ traceparent: String) async throws -> [String]) async throws -> [String] {
        let ids: [String]
        if let tracing {
            let span = tracing.tracer.startSpan("kiln.enqueue", context: ServiceContext.current ?? .topLevel, ofKind: .producer)
            defer { span.end() }
            Self.describe(span, requests)
            do {
                ids = try await write(tracing.traceparent(of: span.context) ?? "")
            } catch {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error))
                throw error
            }
            if ids.count == 1 { span.attributes["job.id"] = ids[0] }
        } else {
            ids = try await write("")
        }
        if let enqueued { count(requests, enqueued) }
        return ids
    }

    private static func describe(_ span: any Span, _ requests: [EnqueueRequest]) {
        span.attributes["messaging.system"] = "kiln"
        span.attributes["kiln.jobs"] = requests.count
        // Queue and type only when the whole call shares them (a batch may mix them).
        let first = requests[0]
        if requests.allSatisfy({ $0.options.queue == first.options.queue }) { span.attributes["queue"] = first.options.queue }
        if requests.allSatisfy({ $0.type == first.type }) { span.attributes["job.type"] = first.type }
    }

    private func count(_ requests: [EnqueueRequest], _ cache: MetricsCache<Counter>) {
        if requests.count == 1 {
            cache.get(queue: requests[0].options.queue, type: requests[0].type).increment()
            return
        }
        var n: [String: [String: Int]] = [:]
        for r in requests { n[r.options.queue, default: [:]][r.type, default: 0] += 1 }
        for (queue, types) in n {
            for (type, k) in types { cache.get(queue: queue, type: type).increment(by: k) }
        }
    }
}
