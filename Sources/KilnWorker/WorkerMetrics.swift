import Metrics
import Kiln
import Tracing

/// One (queue, type)'s job metrics on a worker (names in `KilnMetricNames`).
final class JobMetrics: Sendable {
    let started, succeeded, failed, retried, timedOut, cancelled, dead: Counter
    let queueWait, runTime: CoreMetrics.Timer

    init(dimensions d: [(String, String)], factory f: any MetricsFactory) {
        started = Counter(label: KilnMetricNames.started, dimensions: d, factory: f)
        succeeded = Counter(label: KilnMetricNames.succeeded, dimensions: d, factory: f)
        failed = Counter(label: KilnMetricNames.failed, dimensions: d, factory: f)
        retried = Counter(label: KilnMetricNames.retried, dimensions: d, factory: f)
        timedOut = Counter(label: KilnMetricNames.timedOut, dimensions: d, factory: f)
        cancelled = Counter(label: KilnMetricNames.cancelled, dimensions: d, factory: f)
        dead = Counter(label: KilnMetricNames.dead, dimensions: d, factory: f)
        queueWait = CoreMetrics.Timer(label: KilnMetricNames.queueWait, dimensions: d, factory: f)
        runTime = CoreMetrics.Timer(label: KilnMetricNames.runTime, dimensions: d, factory: f)
    }
}

/// A worker's metrics and `kiln.run` spans (docs/observability.md). Made by `JobRunner` from
/// `WorkerOptions.metricsFactory` / `tracer` (else the global ones); each part is nil, and costs
/// one branch per job, when its backend is the no-op one.
struct WorkerObservability: Sendable {
    /// The `type` dimension of jobs whose type has no handler here: types named by producers
    /// must not make the number of metric series unbounded.
    static let unknownType = "(unknown)"

    let jobs: MetricsCache<JobMetrics>?
    let busyIO, busyCPU: Meter?
    let tracing: KilnTracing?

    init(options: WorkerOptions) {
        if let factory = kilnMetricsFactory(options.metricsFactory) {
            jobs = MetricsCache { JobMetrics(dimensions: $0, factory: factory) }
            busyIO = Meter(label: KilnMetricNames.busySlots, dimensions: [("kind", "io")], factory: factory)
            busyCPU = Meter(label: KilnMetricNames.busySlots, dimensions: [("kind", "cpu")], factory: factory)
            busyIO?.set(0)
            busyCPU?.set(0)
        } else {
            jobs = nil
            busyIO = nil
            busyCPU = nil
        }
        tracing = KilnTracing.resolve(options.tracer)
    }

    /// The metrics of `job` (its type if it has a handler here), or nil when metrics are off.
    func metrics(_ job: LeasedJob, known: Bool) -> JobMetrics? {
        jobs?.get(queue: job.queue, type: known ? job.type : Self.unknownType)
    }

    /// Runs an attempt's handler (`body`): counts it started, records its queue wait, its run
    /// time and the busy slot, and runs it inside a `kiln.run` span continuing the job's stored
    /// trace (the handler's own spans become its children).
    func run(_ job: LeasedJob, metrics m: JobMetrics?, _ body: () async -> JobRunner.Outcome) async -> JobRunner.Outcome {
        let busy = job.kind == .io ? busyIO : busyCPU
        if let m {
            m.started.increment()
            if let wait = job.waitMs { m.queueWait.recordMilliseconds(wait) }
        }
        busy?.increment()
        let started = m == nil ? nil : ContinuousClock.now
        let outcome: JobRunner.Outcome
        if let tracing {
            outcome = await traced(job, tracing, body)
        } else {
            outcome = await body()
        }
        busy?.decrement()
        if let m, let started { m.runTime.recordInterval(ContinuousClock.now - started) }
        return outcome
    }

    private func traced(_ job: LeasedJob, _ tracing: KilnTracing, _ body: () async -> JobRunner.Outcome) async -> JobRunner.Outcome {
        let span = tracing.tracer.startSpan("kiln.run", context: tracing.context(continuing: job.traceparent), ofKind: .consumer)
        defer { span.end() }
        span.attributes["messaging.system"] = "kiln"
        span.attributes["job.id"] = job.id
        span.attributes["job.type"] = job.type
        span.attributes["queue"] = job.queue
        span.attributes["attempt"] = job.attempt
        let outcome = await ServiceContext.$current.withValue(span.context) { await body() }
        switch outcome {
        case .succeeded:
            span.attributes["kiln.outcome"] = "succeeded"
        case .failed(let type, let message, _):
            span.attributes["kiln.outcome"] = "failed"
            span.attributes["kiln.error_type"] = type
            span.setStatus(SpanStatus(code: .error, message: message))
        case .timedOut:
            span.attributes["kiln.outcome"] = "timed_out"
            span.setStatus(SpanStatus(code: .error, message: "timed out"))
        case .stopped(let reason):
            span.attributes["kiln.outcome"] = "stopped"
            span.attributes["kiln.stop_reason"] = "\(reason)"
        }
        return outcome
    }

    /// Counts how a written attempt left its job (`status`: the `finish` reply). Attempts whose
    /// write was stale or failed are not counted: another attempt owns the job.
    func finished(_ m: JobMetrics?, _ outcome: JobRunner.Outcome, _ status: FinishReply?) {
        guard let m, case .left(let left)? = status else { return }
        switch left {
        case .succeeded: m.succeeded.increment()
        case .cancelled: m.cancelled.increment()
        case .retrying, .failed, .timedOut, .dead:
            if case .timedOut = outcome { m.timedOut.increment() } else { m.failed.increment() }
            if left == .retrying { m.retried.increment() }
            if left == .dead { m.dead.increment() }
        case .queued, .running: break
        }
    }
}

extension CoreMetrics.Timer {
    /// Records a `Duration` (nanosecond resolution).
    func recordInterval(_ d: Duration) {
        let (s, atto) = d.components
        recordNanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
