import Metrics
import Foundation
import Kiln
import KilnRedis
import Tracing

/// Settings of a worker process. Every field has a documented default; the `kiln worker` flags
/// and `KILN_*` environment variables map onto them.
public struct WorkerOptions: Sendable {
    /// Redis location (`--redis`, `KILN_REDIS_URL`). Default `redis://127.0.0.1:6379`.
    public var redis: RedisConfiguration
    /// Key prefix (`--prefix`, `KILN_PREFIX`). Default `kiln`.
    public var prefix: String
    /// Queues served (`--queues`); each has its own fetch loop and they share the slots. Default `["default"]`.
    public var queues: [String]
    /// I/O jobs run at once on the async loop (`--concurrency`). Default 256.
    public var concurrency: Int
    /// Child processes for CPU jobs (`--processes`). Default: the number of cores.
    public var processes: Int
    /// Lease a worker takes on each job, renewed every third of it while the job runs
    /// (`--lease`). A job whose worker dies runs again elsewhere this long after the last renewal.
    /// Default 30 s.
    public var lease: Duration
    /// On SIGTERM/SIGINT, how long running jobs may take to finish before they are stopped and
    /// handed back to the queue (`--shutdown-grace`). Default 30 s.
    public var shutdownGrace: Duration
    /// The first retry's delay; each further retry doubles it, plus up to 50% random jitter,
    /// capped at one hour (`--retry-backoff`). Default 1 s.
    public var retryBackoff: Duration
    /// How often the reaper looks for expired leases and due retries. Default 1 s.
    public var reapInterval: Duration
    /// How often the reaper also sweeps for jobs marked running that have no lease at all (a
    /// lost lease entry), giving them one so they are reclaimed if nobody renews it. It SCANs the
    /// database, so it runs rarely. Default 5 minutes.
    public var sweepInterval: Duration
    /// Most dead-lettered jobs kept per queue; the oldest beyond it are deleted. Default 10,000.
    public var deadMax: Int
    /// Dead-lettered jobs older than this are deleted (their records also expire with their
    /// result TTL, whichever comes first). Default 7 days.
    public var deadMaxAge: Duration
    /// Most jobs one fetch call takes, 1–10,000 (bounded by free slots; `--fetch-batch`,
    /// `KILN_FETCH_BATCH`). Default 256: a fetch of 256 jobs runs for about 2-3 ms in Redis, which
    /// serves nobody else meanwhile; a larger batch saves little and blocks Redis for longer.
    public var fetchBatch: Int
    /// Largest result stored, in bytes; a larger one fails the job (`result_too_large`). Default 1 MiB.
    public var maxResultBytes: Int
    /// Grace between SIGTERM and SIGKILL when a CPU job's child is stopped. Default 2 s.
    public var killGrace: Duration
    /// How much nicer than the worker its CPU-job child processes run, 0–19 (`--pool-nice`,
    /// `KILN_POOL_NICE`). Default 10: a busy child then yields the CPU to the worker's async loop
    /// (and to a Redis on the same host) whenever they have work, so a CPU-bound pool does not
    /// delay I/O jobs, while idle cores still go to CPU jobs. 0 runs them at the worker's priority.
    public var poolNiceness: Int = 10
    /// CPU jobs the worker holds beyond those its pool processes run (`--cpu-prefetch`,
    /// `KILN_CPU_PREFETCH`). Default 0: off, a CPU job is leased only when a process is free.
    /// With N > 0 the worker leases up to processes + N CPU jobs: each process gets its next job
    /// in its pipe while it runs one (it starts it without a round trip), the rest wait in a
    /// buffer, and a job's timeout starts only when a process takes it. Waiting jobs hold their
    /// leases (the heartbeat renews them), so another worker cannot run them meanwhile: use it
    /// for many short CPU jobs, not for long ones. On graceful shutdown the jobs not started are
    /// handed back at once (those in a pipe when their process ends its current job).
    public var cpuPrefetch: Int = 0
    /// With `cpuPrefetch`, fetch more CPU jobs once the jobs waiting in the worker fell to this
    /// many (`--cpu-prefetch-low`, `KILN_CPU_PREFETCH_LOW`), 0 to `cpuPrefetch - 1`. Default
    /// nil: a quarter of `cpuPrefetch`. Fetches then come in batches of about
    /// `cpuPrefetch - low` jobs (at most `fetchBatch`).
    public var cpuPrefetchLowWater: Int?
    /// I/O jobs the worker holds beyond the `concurrency` it runs (`--prefetch`, `KILN_PREFETCH`).
    /// Default 0: off, an I/O job is leased only when a slot is free. With N > 0 the worker leases
    /// up to concurrency + N I/O jobs, fetching again once N / 2 of them ended, so the next jobs
    /// are already here when a slot frees (no round trip between jobs). At most `concurrency` run
    /// at once; a job's timeout starts when it gets a slot. Waiting jobs hold their leases (the
    /// heartbeat renews them), so another worker cannot run them meanwhile: use it for many short
    /// jobs. On graceful shutdown the jobs not started are handed back at once, unrun.
    public var prefetch: Int = 0
    /// This worker's name in records and logs (`--name`). Default `host:pid`.
    public var name: String
    /// Where the worker's job metrics go (swift-metrics; names in docs/observability.md).
    /// Default nil: the global `MetricsSystem.factory` as it is when the worker is made
    /// (bootstrap it first); the no-op factory turns every metric off.
    public var metricsFactory: (any MetricsFactory)? = nil
    /// The tracer of `kiln.run` spans, which continue the trace stored with each job and hold
    /// the handler's own spans. Default nil: the global `InstrumentationSystem.tracer` as it is
    /// when the worker is made; the no-op tracer turns spans off.
    public var tracer: (any Tracer)? = nil

    /// Options; every default is the one documented on its property.
    public init(
        redis: RedisConfiguration = RedisConfiguration(),
        prefix: String = "kiln",
        queues: [String] = ["default"],
        concurrency: Int = 256,
        processes: Int = ProcessInfo.processInfo.activeProcessorCount,
        lease: Duration = .seconds(30),
        shutdownGrace: Duration = .seconds(30),
        retryBackoff: Duration = .seconds(1),
        reapInterval: Duration = .seconds(1),
        sweepInterval: Duration = .seconds(300),
        deadMax: Int = 10_000,
        deadMaxAge: Duration = .seconds(7 * 86_400),
        fetchBatch: Int = 256,
        maxResultBytes: Int = 1 << 20,
        killGrace: Duration = .seconds(2),
        name: String = WorkerOptions.defaultName
    ) {
        self.redis = redis
        self.prefix = prefix
        self.queues = queues
        self.concurrency = concurrency
        self.processes = processes
        self.lease = lease
        self.shutdownGrace = shutdownGrace
        self.retryBackoff = retryBackoff
        self.reapInterval = reapInterval
        self.sweepInterval = sweepInterval
        self.deadMax = deadMax
        self.deadMaxAge = deadMaxAge
        self.fetchBatch = fetchBatch
        self.maxResultBytes = maxResultBytes
        self.killGrace = killGrace
        self.name = name
    }

    /// How much longer than its timeout a job's first lease runs (kill grace + 2 s): a job ends by
    /// its timeout, so a short job whose worker dies comes back this soon after its timeout.
    package var leaseMargin: Duration { killGrace + .seconds(2) }

    /// How many I/O slots must be free before the I/O fetch loop leases more: 1 without
    /// `prefetch`, else half of it (fetches then come in batches of about `prefetch / 2`).
    var ioFetchThreshold: Int { max(1, prefetch / 2) }

    /// The free CPU slots a CPU fetch waits for: 1 without prefetch, else enough that the jobs
    /// waiting in the worker fell to the low-water mark.
    var cpuFetchThreshold: Int {
        guard cpuPrefetch > 0 else { return 1 }
        return max(1, cpuPrefetch - (cpuPrefetchLowWater ?? cpuPrefetch / 4))
    }

    /// The default worker name: `host:pid`.
    public static var defaultName: String {
        "\(ProcessInfo.processInfo.hostName):\(getpid())"
    }

    /// Checks the options; throws `KilnError(.invalidInput)` naming the bad one.
    public func validate() throws {
        if queues.isEmpty { throw KilnError(.invalidInput, "no queues given: name at least one with --queues") }
        for q in queues { try KeySchema.checkQueueName(q) }
        if name.isEmpty || name.utf8.count > 200 || SafeText.firstControl(in: name) != nil {
            throw KilnError(.invalidInput, "invalid worker name '\(SafeText.escaped(String(name.prefix(40))))': use 1-200 characters without control characters")
        }
        if !KeySchema.isValidPrefix(prefix) {
            throw KilnError(.invalidInput, "invalid key prefix '\(prefix.prefix(70))'")
        }
        if concurrency < 1 || concurrency > 1_000_000 { throw KilnError(.invalidInput, "--concurrency must be from 1 to 1000000, got \(concurrency)") }
        if processes < 0 || processes > 1024 { throw KilnError(.invalidInput, "--processes must be from 0 to 1024, got \(processes)") }
        if lease < .milliseconds(300) { throw KilnError(.invalidInput, "--lease must be at least 300ms, got \(KilnDuration.format(lease))") }
        if deadMax < 0 { throw KilnError(.invalidInput, "--dead-max must not be negative") }
        if poolNiceness < 0 || poolNiceness > 19 { throw KilnError(.invalidInput, "--pool-nice must be from 0 to 19, got \(poolNiceness)") }
        if prefetch < 0 || prefetch > 100_000 { throw KilnError(.invalidInput, "--prefetch must be from 0 to 100000, got \(prefetch)") }
        if cpuPrefetch < 0 || cpuPrefetch > 100_000 { throw KilnError(.invalidInput, "--cpu-prefetch must be from 0 to 100000, got \(cpuPrefetch)") }
        if let low = cpuPrefetchLowWater, low < 0 || (cpuPrefetch > 0 && low >= cpuPrefetch) {
            throw KilnError(.invalidInput, "--cpu-prefetch-low must be from 0 to --cpu-prefetch minus 1 (\(max(0, cpuPrefetch - 1))), got \(low)")
        }
        if fetchBatch < 1 || fetchBatch > 10_000 { throw KilnError(.invalidInput, "--fetch-batch must be from 1 to 10000, got \(fetchBatch)") }
    }
}
