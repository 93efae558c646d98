import Foundation
import InMemoryTracing
@testable import Kiln
import KilnRedis
@testable import KilnWorker
import Logging
import MetricsTestKit
import ServiceLifecycle
import Testing
import Tracing

/// A worker run in this process (its services in a `ServiceGroup` of the test's own, no signal
/// handlers), so each test gives it its own metrics backend and tracer.
struct InProcessWorker {
    let worker: Worker
    let group: ServiceGroup
    let task: Task<Void, Error>

    init(_ options: WorkerOptions, registry: JobRegistry) throws {
        var logger = Logger(label: "test.worker")
        logger.logLevel = .error
        worker = try Worker(options: options, registry: registry, logger: logger)
        let group = ServiceGroup(configuration: .init(services: worker.services.map { .init(service: $0) }, logger: logger))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        worker.connection.close()
    }
}

@Suite struct ObservabilityTests {
    let redis = TestRedis.shared

    func workerOptions(prefix: String, queues: [String]) -> WorkerOptions {
        var o = WorkerOptions(redis: redis.configuration, prefix: prefix, queues: queues, concurrency: 16, processes: 0,
                              retryBackoff: .milliseconds(20), reapInterval: .milliseconds(100))
        o.shutdownGrace = .seconds(5)
        return o
    }

    func client(prefix: String, metrics: TestMetrics? = nil, tracer: (any Tracer)? = nil) throws -> KilnClient {
        var o = KilnClientOptions(redis: redis.configuration, prefix: prefix)
        o.metricsFactory = metrics
        o.tracer = tracer
        return try KilnClient(options: o)
    }

    // MARK: metrics

    @Test func countersTimersAndBusySlotsPerQueueAndType() async throws {
        let prefix = TestRedis.uniquePrefix()
        let metrics = TestMetrics()
        var jobs = JobRegistry()
        jobs.ioRaw("ok") { _, _ in "1" }
        jobs.ioRaw("boom") { _, _ in throw JobFailure("no", retryable: false) }
        jobs.ioRaw("flaky") { _, ctx in
            if ctx.attempt == 1 { throw JobFailure("first try fails") }
            return "2"
        }
        jobs.ioRaw("doomed") { _, _ in throw JobFailure("always fails") }
        jobs.ioRaw("slow") { _, _ in
            try await Task.sleep(for: .seconds(60))
            return "3"
        }
        jobs.ioRaw("hang") { _, _ in
            try await Task.sleep(for: .seconds(60))
            return "4"
        }
        var options = workerOptions(prefix: prefix, queues: ["q1", "q2"])
        options.metricsFactory = metrics
        let worker = try InProcessWorker(options, registry: jobs)
        let kiln = try client(prefix: prefix, metrics: metrics)
        defer { kiln.close() }

        func opts(_ retries: Int, queue: String = "q1", timeout: Duration = .seconds(30)) -> JobOptions {
            JobOptions(queue: queue, timeout: timeout, retries: retries)
        }
        let ids = try await kiln.enqueueBatch([
            EnqueueRequest(type: "ok", options: opts(0)),
            EnqueueRequest(type: "ok", options: opts(0, queue: "q2")),
            EnqueueRequest(type: "boom", options: opts(0)),
            EnqueueRequest(type: "flaky", options: opts(2)),
            EnqueueRequest(type: "doomed", options: opts(1)),
            EnqueueRequest(type: "slow", options: opts(0, timeout: .milliseconds(300))),
            EnqueueRequest(type: "no.such.type", options: opts(3)),
        ])
        let hang = try await kiln.enqueue("hang", options: opts(0)).id
        try await eventually("hang runs") { try await kiln.record(hang, queue: "q1").status == .running }
        _ = try await kiln.cancel(hang, queue: "q1")
        let queues = ["q1", "q2", "q1", "q1", "q1", "q1", "q1"]
        var statuses: [JobStatus?] = []
        for (id, q) in zip(ids, queues) { statuses.append(try await kiln.wait(id, queue: q, timeout: .seconds(30)).status) }
        #expect(statuses == [.succeeded, .succeeded, .failed, .succeeded, .dead, .timedOut, .dead])
        #expect(try await kiln.wait(hang, queue: "q1", timeout: .seconds(30)).status == .cancelled)

        func total(_ label: String, _ type: String, _ queue: String = "q1") -> Int64 {
            metrics.counterTotal(label: label, dimensions: [("queue", queue), ("type", type)])
        }
        // (label, type, queue, expected)
        let expected: [(String, String, String, Int64)] = [
            (KilnMetricNames.enqueued, "ok", "q1", 1), (KilnMetricNames.enqueued, "ok", "q2", 1),
            (KilnMetricNames.enqueued, "flaky", "q1", 1), (KilnMetricNames.enqueued, "hang", "q1", 1),
            (KilnMetricNames.started, "ok", "q1", 1), (KilnMetricNames.succeeded, "ok", "q1", 1),
            (KilnMetricNames.started, "ok", "q2", 1), (KilnMetricNames.succeeded, "ok", "q2", 1),
            (KilnMetricNames.failed, "boom", "q1", 1), (KilnMetricNames.dead, "boom", "q1", 0), (KilnMetricNames.retried, "boom", "q1", 0),
            (KilnMetricNames.started, "flaky", "q1", 2), (KilnMetricNames.failed, "flaky", "q1", 1),
            (KilnMetricNames.retried, "flaky", "q1", 1), (KilnMetricNames.succeeded, "flaky", "q1", 1),
            (KilnMetricNames.started, "doomed", "q1", 2), (KilnMetricNames.failed, "doomed", "q1", 2),
            (KilnMetricNames.retried, "doomed", "q1", 1), (KilnMetricNames.dead, "doomed", "q1", 1),
            (KilnMetricNames.timedOut, "slow", "q1", 1), (KilnMetricNames.failed, "slow", "q1", 0),
            (KilnMetricNames.started, "hang", "q1", 1), (KilnMetricNames.cancelled, "hang", "q1", 1),
            // A type without a handler here is counted under one bounded name, never started.
            (KilnMetricNames.failed, WorkerObservability.unknownType, "q1", 1), (KilnMetricNames.dead, WorkerObservability.unknownType, "q1", 1),
            (KilnMetricNames.started, "no.such.type", "q1", 0),
        ]
        // A worker counts an outcome once its write is answered, just after the client sees it.
        try await eventually("every counter") { expected.allSatisfy { total($0.0, $0.1, $0.2) == $0.3 } }
        for (label, type, queue, n) in expected { #expect(total(label, type, queue) == n, "\(label) \(queue)/\(type)") }

        let run = metrics.timers(label: KilnMetricNames.runTime, dimensions: [("queue", "q1"), ("type", "flaky")])
        #expect(run.first?.values.count == 2)
        let wait = metrics.timers(label: KilnMetricNames.queueWait, dimensions: [("queue", "q2"), ("type", "ok")])
        #expect(wait.first?.values.count == 1 && (wait.first?.values.first ?? -1) >= 0)
        let slowRun = try #require(metrics.timers(label: KilnMetricNames.runTime, dimensions: [("queue", "q1"), ("type", "slow")]).first)
        #expect((slowRun.values.first ?? 0) >= 250_000_000, "the timed-out run lasted about its timeout (ns)")

        // The busy-slots meter went up while jobs ran, and is back at 0.
        let busy = try metrics.expectMeter(KilnMetricNames.busySlots, [("kind", "io")])
        try await eventually("no busy slot") { busy.lastValue == 0 }
        #expect((busy.values.max() ?? 0) >= 1)
        try await worker.stop()
    }

    @Test func noOpBackendsMakeNoMetricsAndWriteNoTraceparent() async throws {
        let prefix = TestRedis.uniquePrefix()
        let kiln = try client(prefix: prefix)  // the global no-op factory and tracer
        defer { kiln.close() }
        #expect(kiln.observability.enqueued == nil && kiln.observability.tracing == nil)
        #expect(WorkerObservability(options: workerOptions(prefix: prefix, queues: ["q"])).jobs == nil)
        let id = try await kiln.enqueue("echo", json: "1", options: JobOptions(queue: "q")).id
        #expect(try await fieldCount(kiln.store, queue: "q", id: id) == 20)
        #expect(try await kiln.record(id, queue: "q").traceparent == nil)
    }

    /// Number of positions in the stored MessagePack record.
    func fieldCount(_ store: KilnStore, queue: String, id: String) async throws -> Int? {
        try await store.connection.send(["EVAL", "return #cmsgpack.unpack(redis.call('HGET', KEYS[1], ARGV[1]))", "1",
                                         store.keys.jobs(queue), id]).int
    }

    // MARK: tracing

    @Test func traceContinuesFromTheProducerSpanIntoTheRunThroughRedis() async throws {
        let prefix = TestRedis.uniquePrefix()
        let tracer = W3CTestTracer()
        var jobs = JobRegistry()
        jobs.ioRaw("traced") { _, _ in
            tracer.withSpan("handler.inner") { _ in }
            return "1"
        }
        var options = workerOptions(prefix: prefix, queues: ["q"])
        options.tracer = tracer
        let worker = try InProcessWorker(options, registry: jobs)
        let kiln = try client(prefix: prefix, tracer: tracer)
        defer { kiln.close() }

        let id = try await tracer.withSpan("request") { _ in
            try await kiln.enqueue("traced", json: "{}", options: JobOptions(queue: "q")).id
        }
        #expect(try await kiln.wait(id, queue: "q", timeout: .seconds(30)).status == .succeeded)
        try await eventually("the run span ended") { tracer.finishedSpans.contains { $0.operationName == "handler.inner" } }
        let spans = tracer.finishedSpans
        func span(_ name: String) throws -> FinishedInMemorySpan { try #require(spans.first { $0.operationName == name }) }
        let request = try span("request"), enqueue = try span("kiln.enqueue"), run = try span("kiln.run"), inner = try span("handler.inner")
        #expect(enqueue.kind == .producer && run.kind == .consumer)
        #expect(enqueue.parentSpanID == request.spanID)
        #expect(run.parentSpanID == enqueue.spanID, "the run continues the enqueue span through the stored traceparent")
        #expect(inner.parentSpanID == run.spanID, "the handler's own span is a child of the run")
        #expect(Set([request.traceID, enqueue.traceID, run.traceID, inner.traceID]).count == 1)
        #expect(run.attributes["job.id"]?.toSpanAttribute() == .string(id))
        #expect(run.attributes["job.type"]?.toSpanAttribute() == .string("traced"))
        #expect(run.attributes["queue"]?.toSpanAttribute() == .string("q"))
        #expect(run.attributes["attempt"]?.toSpanAttribute() == .int64(1))
        #expect(enqueue.attributes["job.id"]?.toSpanAttribute() == .string(id))
        // Stored with the job: position 21, and the record's `traceparent`.
        let record = try await kiln.record(id, queue: "q")
        #expect(record.traceparent == "00-\(enqueue.traceID)-\(enqueue.spanID)-01")
        #expect(try await fieldCount(kiln.store, queue: "q", id: id) == 21)
        try await worker.stop()
    }

    /// Records written by another producer: a malformed or non-text position 21 runs the job
    /// normally under a root span; a valid traceparent given with the `:traceparent` form of the
    /// enqueue script is continued.
    @Test func foreignTraceparentsValidOrNot() async throws {
        let prefix = TestRedis.uniquePrefix()
        let tracer = W3CTestTracer()
        var jobs = JobRegistry()
        jobs.ioRaw("echo") { p, _ in p }
        var options = workerOptions(prefix: prefix, queues: ["q"])
        options.tracer = tracer
        let kiln = try client(prefix: prefix)
        defer { kiln.close() }
        let store = kiln.store
        let bad: [(String, RawRecord.RawValue)] = [
            ("garbage", .str("00-not-a-trace")), ("number", .int(7)), ("empty", .str("")),
            ("zeros", .str("00-00000000000000000000000000000000-00f067aa0ba902b7-01")),
            ("version-ff", .str("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")),
            ("upper", .str("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")),
            ("long", .str(String(repeating: "x", count: 10_000))),
        ]
        for (id, value) in bad {
            try await RawRecord().put(store, queue: "q", id: id, ready: .io)
            try await RawRecord.patch(store, queue: "q", id: id, [21: value])
        }
        // Another producer's enqueue with a valid traceparent (docs/protocol.md, "Enqueue").
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let keys = store.keys
        func enqueue(_ id: String, _ traceparent: String) async throws -> RedisValue {
            try await store.connection.send(["EVAL", KilnScripts.enqueue.source, "3", keys.jobs("q"), keys.ready("q", .io), keys.ready("q", .cpu),
                                             keys.queuePrefix("q"), String(KilnClock.nowMs()), KilnScripts.traceparentMarker,
                                             id, "echo", "io", "{}", "1", "10000", "86400000", traceparent])
        }
        #expect(try await enqueue("foreign", tp).array.compactMap(\.int) == [0, 0, 0])
        #expect(try await enqueue("untraced", "").array.compactMap(\.int) == [0, 0, 0])
        do {
            let reply = try await enqueue("too-long", String(repeating: "0", count: 257))
            if case .error(let e) = reply { #expect(e.contains("traceparent must be at most 256 bytes")) } else {
                Issue.record("a traceparent over 256 bytes was accepted: \(reply)")
            }
        } catch {
            #expect("\(error)".contains("traceparent must be at most 256 bytes"))
        }
        #expect(try await fieldCount(store, queue: "q", id: "untraced") == 20)
        #expect(try await kiln.record("foreign", queue: "q").traceparent == tp)

        let worker = try InProcessWorker(options, registry: jobs)
        for id in bad.map(\.0) + ["foreign", "untraced"] {
            #expect(try await kiln.wait(id, queue: "q", timeout: .seconds(30)).status == .succeeded, "\(id)")
        }
        try await eventually("every run span ended") { tracer.finishedSpans.filter { $0.operationName == "kiln.run" }.count == bad.count + 2 }
        let runs = Dictionary(tracer.finishedSpans.map { span -> (String, FinishedInMemorySpan) in
            guard case .string(let id)? = span.attributes["job.id"]?.toSpanAttribute() else { return ("?", span) }
            return (id, span)
        }, uniquingKeysWith: { a, _ in a })
        for id in bad.map(\.0) + ["untraced"] {
            #expect(runs[id]?.parentSpanID == nil, "\(id): a root span")
        }
        #expect(runs["foreign"]?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(runs["foreign"]?.parentSpanID == "00f067aa0ba902b7")
        try await worker.stop()
    }

    @Test func traceparentSyntax() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceParent.isValid(good))
        #expect(TraceParent.isValid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-later-fields"))
        #expect(TraceParent.isValid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        for bad in ["", "00", good + "-", good + "x", String(good.dropLast()), good.uppercased(),
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x"] {
            #expect(!TraceParent.isValid(bad), "\(bad)")
        }
    }
}
