import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle
import Synchronization

/// Runs one leased job to its end: checks the envelope, runs the handler on the async loop or in
/// the pool under its timeout, and writes the outcome with the fenced `finish` script
/// (batched with other jobs' outcomes by `FinishBatcher`).
struct JobRunner: Sendable {
    let options: WorkerOptions
    let registry: JobRegistry
    let store: KilnStore
    let pool: ProcessPool?
    let running: RunningJobs
    let deadlines: Deadlines
    let logger: Logger
    /// Shared by every job's writes, so an outage is logged once, not once per job.
    let writeOutage: WriteOutage
    /// Writes outcomes in batches (one `finish` call for all that finish together).
    let finisher: FinishBatcher
    /// With `prefetch`: the `concurrency` slots I/O jobs run in (the executor's slots count the
    /// jobs held, running or waiting). nil: every job held runs at once.
    let ioRunSlots: SlotPool?
    /// Job metrics and `kiln.run` spans (`WorkerMetrics.swift`); off with the no-op backends.
    let observability: WorkerObservability

    init(options: WorkerOptions, registry: JobRegistry, store: KilnStore, pool: ProcessPool?,
         running: RunningJobs, deadlines: Deadlines, logger: Logger, ioRunSlots: SlotPool? = nil) {
        self.ioRunSlots = ioRunSlots
        self.options = options
        self.registry = registry
        self.store = store
        self.pool = pool
        self.running = running
        self.deadlines = deadlines
        self.logger = logger
        let outage = WriteOutage()
        self.writeOutage = outage
        self.finisher = FinishBatcher(store: store, outage: outage, logger: logger)
        self.observability = WorkerObservability(options: options)
    }

    /// How an attempt ended, before it is written.
    enum Outcome: Sendable {
        case succeeded(String)
        case failed(type: String, message: String, retryable: Bool)
        case timedOut
        case stopped(StopReason)
    }

    /// Runs `job`; calls `free` once its slot is free again: when the handler (or pool child) is
    /// done, before the outcome is written, so the next job can be fetched meanwhile.
    func run(_ job: LeasedJob, free: () -> Void) async {
        var freed = false
        defer { if !freed { free() } }
        let log = JobLog(base: logger, job: job)
        let control = JobControl()
        running.add(queue: job.queue, id: job.id, .init(token: job.token, control: control))
        defer { running.remove(queue: job.queue, id: job.id) }

        if let problem = job.envelopeProblem {
            log.warning("job rejected: \(SafeText.escaped(problem))")
            await write(job, .failed(type: "malformed_envelope", message: problem, retryable: false), log: log)
            return
        }
        guard let handler = registry.handler(for: job.type) else {
            let msg = "no handler registered for job type '\(SafeText.escaped(job.type))' on worker \(options.name)"
            log.warning("job rejected: \(msg)")
            await write(job, .failed(type: "unknown_type", message: msg, retryable: false), log: log)
            return
        }
        if job.kind == .io, handler.kind == .cpu {
            // A synchronous CPU handler never runs on the async loop: send it to the pool's queue.
            await release(job, to: .cpu, log: log)
            return
        }
        if job.kind == .cpu, pool == nil {
            await release(job, to: .cpu, log: log)
            return
        }
        // A prefetched I/O job waits here for a slot; its lease is renewed meanwhile (it is in
        // `running`), and its timeout starts only once it has one.
        let runSlots = job.kind == .io ? ioRunSlots : nil
        if let runSlots {
            do {
                _ = try await cancelWhenGracefulShutdown { try await runSlots.acquire(max: 1) }
            } catch {
                await release(job, to: job.kind, log: log)
                return
            }
        }
        let timeout = Duration.milliseconds(job.timeoutMs ?? 300_000)
        log.info("job started", metadata: ["kind": "\(job.kind.rawValue)", "queue": "\(job.queue)"])
        let started = ContinuousClock.now
        let metrics = observability.metrics(job, known: true)
        let outcome = await observability.run(job, metrics: metrics) {
            await execute(job, handler: handler, timeout: timeout, control: control)
        }
        let elapsed = ContinuousClock.now - started
        // The attempt ended now, before its slot goes to the next job (records stay in order).
        let endedAt = KilnClock.nowMs()
        runSlots?.release(1)
        free()
        freed = true
        if case .stopped(.shutdown) = outcome {
            await release(job, to: job.kind, log: log)
            return
        }
        let status = await write(job, outcome, endedAt: endedAt, log: log, metrics: metrics)
        log.info("job finished", metadata: ["status": "\(status)", "ms": "\(KilnDuration.milliseconds(elapsed))"])
    }

    /// Runs the handler under the job's deadline and stop control, in a task the control can
    /// cancel (``JobControl/run(_:)``): a timeout or a stop cancels it (an I/O handler sees
    /// cancellation; a pool child is killed), and the first of handler result, timeout and stop
    /// decides the outcome. Like a task group, it returns only once the handler has returned.
    private func execute(_ job: LeasedJob, handler: JobRegistry.Handler, timeout: Duration, control: JobControl) async -> Outcome {
        let context = JobContext(id: job.id, type: job.type, queue: job.queue, attempt: job.attempt,
                                 maxAttempts: job.maxAttempts, timeout: timeout, logger: logger)
        // The timeout runs from when the job starts: now for an I/O job, when a pool process
        // takes it for a CPU job (a prefetched job may wait in the worker first).
        let deadline = DeadlineArm(deadlines: deadlines, control: control, timeout: timeout)
        defer { deadline.disarm() }
        let inPool = job.kind == .cpu && pool != nil
        if !inPool { deadline.start() }
        func stopped(_ cause: JobControl.Cause?) -> Outcome? {
            switch cause {
            case .timedOut: return .timedOut
            case .stopped(let reason): return .stopped(reason)
            case nil: return nil
            }
        }
        let pool = self.pool
        let ran = await control.run { () async -> Attempt in
            if job.kind == .cpu, let pool {
                let poolJob = PoolJob(id: job.id, type: job.type, queue: job.queue, payload: job.payload,
                                      attempt: job.attempt, maxAttempts: job.maxAttempts, timeoutMs: job.timeoutMs ?? 300_000)
                switch await pool.execute(poolJob, onStart: { deadline.start() }) {
                case .succeeded(let r): return Attempt(result: .succeeded(r))
                case .failed(let t, let m, let retry): return Attempt(result: .failed(type: t, message: m, retryable: retry))
                case .crashed(let why): return Attempt(result: .failed(type: "crash", message: why, retryable: true))
                case .killed: return Attempt(result: nil)
                case .dropped:
                    // Never started (a prefetched job at graceful shutdown, or a withdrawn one).
                    return Attempt(result: nil, handedBack: true)
                }
            }
            do {
                switch handler {
                case .io(let body): return Attempt(result: .succeeded(try await body(job.payload, context)))
                case .cpu(let body): return Attempt(result: .succeeded(try body(job.payload, context)))  // only without a pool (never: released above)
                }
            } catch let f as JobFailure {
                return Attempt(result: .failed(type: f.type, message: f.message, retryable: f.retryable))
            } catch is CancellationError where Task.isCancelled {
                return Attempt(result: nil)
            } catch {
                return Attempt(result: .failed(type: "error", message: String(describing: error), retryable: true))
            }
        }
        // A stop that came before the handler returned wins, as the first finisher of a race
        // would; a stop before the start means the handler never ran (`ran` is nil).
        if let cause = stopped(control.end()) { return cause }
        guard let ran else { return .stopped(.leaseLost) }
        return ran.result ?? (ran.handedBack ? .stopped(.shutdown) : .stopped(.leaseLost))
    }

    /// What the handler's task returns: its outcome (nil if it was stopped) and whether the pool
    /// handed the job back unstarted.
    private struct Attempt: Sendable {
        var result: Outcome?
        var handedBack = false
    }

    /// Writes the outcome with the fenced finish script, retrying while Redis is unreachable.
    @discardableResult
    private func write(_ job: LeasedJob, _ outcome: Outcome, endedAt: Int64? = nil, log: JobLog, metrics: JobMetrics? = nil) async -> String {
        let endedAt = endedAt ?? KilnClock.nowMs()
        var attempt = AttemptOutcome(id: job.id, token: job.token, ending: .failed, endedAt: endedAt)
        switch outcome {
        case .succeeded(let r):
            attempt.ending = .succeeded
            attempt.result = r
            if r.utf8.count > options.maxResultBytes {
                attempt.ending = .failed
                attempt.errorType = "result_too_large"
                attempt.errorMessage = "result is \(r.utf8.count) bytes, over the limit of \(options.maxResultBytes) bytes"
                attempt.result = ""
            }
        case .failed(let t, let m, let retryable):
            attempt.errorType = t
            attempt.errorMessage = m
            if retryable { attempt.retryDelayMs = backoffMs(attempt: job.attempt) }
        case .timedOut:
            attempt.ending = .timedOut
            attempt.errorType = "timeout"
            attempt.errorMessage = "timed out after \(KilnDuration.format(.milliseconds(job.timeoutMs ?? 0)))"
            attempt.retryDelayMs = backoffMs(attempt: job.attempt)
        case .stopped(.cancel):
            attempt.ending = .cancelled
            attempt.errorType = "cancelled"
            attempt.errorMessage = "cancelled while running"
        case .stopped(.leaseLost):
            log.warning("job stopped: its lease was lost and another worker owns it now; nothing written")
            return "lease_lost"
        case .stopped(.shutdown):
            return "released"
        }
        let status = await finisher.finish(queue: job.queue, attempt)
        if observability.jobs != nil {
            observability.finished(metrics ?? observability.metrics(job, known: registry.handler(for: job.type) != nil), outcome, status)
        }
        if status == .stale {
            log.warning("result discarded: this attempt no longer holds the job's lease (a newer attempt owns it)")
        } else if status == .left(.retrying) {
            log.info("job will retry", metadata: ["error": "\(SafeText.escaped(attempt.errorMessage))", "delay_ms": "\(attempt.retryDelayMs ?? -1)"])
        }
        return status?.word ?? "unwritten"
    }

    private func release(_ job: LeasedJob, to kind: JobKind, log: JobLog) async {
        let r = await retrying(log: log, what: "hand the job back") {
            try await store.release(queue: job.queue, id: job.id, token: job.token, to: kind, now: KilnClock.nowMs()).rawValue
        }
        log.info("job handed back to the queue", metadata: ["to": "\(kind.rawValue)", "outcome": "\(r ?? "unwritten")"])
    }

    /// Retries a Redis write through outages until it is stored (or the script says the attempt
    /// is fenced): an outcome is never dropped because Redis blinked. Error replies (which
    /// retrying cannot fix) give up after five tries.
    private func retrying(log: JobLog, what: String, _ body: @escaping @Sendable () async throws -> String) async -> String? {
        // Unstructured on purpose: the outcome of an attempt that ran must be written even if the
        // job's task is cancelled (forced shutdown), so the write must not inherit cancellation.
        let write = Task<String?, Never> {
            var backoff = Backoff(initial: .milliseconds(50), max: .seconds(1))
            var failingSince: ContinuousClock.Instant?
            var serverErrors = 0
            while true {
                do {
                    let r = try await body()
                    if let failingSince {
                        log.debug("\(what): done after Redis came back (\(KilnDuration.format(ContinuousClock.now - failingSince)))")
                        writeOutage.ended(log.base)
                    }
                    return r
                } catch {
                    // An error reply (no permission, script error) will not go away by retrying:
                    // give up after a few tries; the lease expires and the reaper takes over.
                    if let e = error as? RedisError, !e.isTransient {
                        serverErrors += 1
                        if serverErrors >= 5 {
                            log.error("could not \(what), giving up: \(e.message)")
                            if failingSince != nil { writeOutage.ended(log.base) }
                            return nil
                        }
                    }
                    if failingSince == nil {
                        failingSince = .now
                        writeOutage.began(error, log.base)
                    }
                    // A capped retry of a write while Redis is away, not a poll for state.
                    try? await Task.sleep(for: backoff.next())
                }
            }
        }
        return await write.value
    }

    /// The job's retry delay (protocol behaviour, docs/architecture.md "Retries"):
    /// `retry_backoff × 2^(attempt-1) × (1 + random[0, 0.5))`, capped at 1 h.
    func backoffMs(attempt: Int) -> Int64 {
        KilnDuration.milliseconds(Backoff.delay(attempt: attempt, initial: options.retryBackoff, max: .seconds(3600), jitter: 0.5))
    }

}

/// Logs a Redis outage seen by result writes once when it begins and once when it ends, however
/// many jobs are waiting to write meanwhile.
final class WriteOutage: Sendable {
    private let state = Mutex<(waiting: Int, since: ContinuousClock.Instant?)>((0, nil))

    func began(_ error: Error, _ log: Logger) {
        let first = state.withLock { s -> Bool in
            s.waiting += 1
            if s.since == nil { s.since = .now; return true }
            return false
        }
        guard first else { return }
        if let e = error as? RedisError, !e.isTransient {
            // An error reply is not an outage: say what Redis answered.
            log.warning("Redis refused to write job outcomes, trying again a few times: \(e)")
        } else {
            log.warning("cannot write job outcomes, retrying until Redis is back: \(error)")
        }
    }

    func ended(_ log: Logger) {
        let over: Duration? = state.withLock { s in
            s.waiting -= 1
            guard s.waiting == 0, let since = s.since else { return nil }
            s.since = nil
            return ContinuousClock.now - since
        }
        if let over { log.info("job outcomes written again after Redis came back (\(KilnDuration.format(over)))") }
    }
}

/// The runner's logging for one job: `job.id`, `job.type` and `attempt` metadata are added per
/// message, and only for messages the log level lets through.
struct JobLog: Sendable {
    let base: Logger
    let job: LeasedJob

    private func meta(_ extra: Logger.Metadata) -> Logger.Metadata {
        var m = extra
        m["job.id"] = .string(SafeText.escaped(job.id))
        m["job.type"] = .string(SafeText.escaped(job.type))
        m["attempt"] = .string(String(job.attempt))
        return m
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        base.debug(message(), metadata: meta(metadata()))
    }
    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        base.info(message(), metadata: meta(metadata()))
    }
    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        base.warning(message(), metadata: meta(metadata()))
    }
    func error(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        base.error(message(), metadata: meta(metadata()))
    }
}
