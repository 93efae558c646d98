import Metrics
import KilnRedis
import Tracing

/// Per-job settings for `KilnClient.enqueue`. Defaults: queue `default`, timeout 5 minutes,
/// 3 retries (4 attempts), results kept 24 hours, kind from the producer's registry (else `io`).
public struct JobOptions: Sendable {
    /// The queue the job goes to. Default `default`.
    public var queue: String
    /// How long one attempt may run before the worker stops it (`timed_out`).
    public var timeout: Duration
    /// How many times a failed attempt is retried (0 = run once).
    public var retries: Int
    /// How long the finished record (the result) is kept.
    public var resultTTL: Duration
    /// Where the job runs; `nil` = the kind registered for its type, else `io`.
    public var kind: JobKind?
    /// A caller-chosen id (for idempotent enqueue); `nil` = a new ULID.
    public var id: String?

    /// Options; every default is the one documented on its property.
    public init(
        queue: String = "default", timeout: Duration = .seconds(300), retries: Int = 3,
        resultTTL: Duration = .seconds(86_400), kind: JobKind? = nil, id: String? = nil
    ) {
        self.queue = queue
        self.timeout = timeout
        self.retries = retries
        self.resultTTL = resultTTL
        self.kind = kind
        self.id = id
    }
}

/// How a client retries an operation when Redis cannot be reached or the connection drops
/// mid-command. Enqueue stays exactly-once across retries: ids are chosen before the first try.
public struct RetryPolicy: Sendable, Equatable {
    /// Tries in all (1 = no retry).
    public var attempts: Int
    /// Wait before the second try; doubles after each further failure.
    public var backoff: Duration

    /// A policy; `attempts` below 1 counts as 1.
    public init(attempts: Int = 3, backoff: Duration = .milliseconds(100)) {
        self.attempts = max(1, attempts)
        self.backoff = backoff
    }

    /// Fail at the first error (what the `kiln` CLI uses: it must fail fast).
    public static let none = RetryPolicy(attempts: 1)
}

/// Settings of a `KilnClient`. Defaults: Redis at `redis://127.0.0.1:6379`, key prefix `kiln`,
/// payloads up to 1 MiB, 3 tries on network errors.
public struct KilnClientOptions: Sendable {
    /// Where Redis is. Default `redis://127.0.0.1:6379`.
    public var redis: RedisConfiguration
    /// The key prefix every key starts with (workers must use the same one). Default `kiln`.
    public var prefix: String
    /// The largest payload accepted, in bytes; larger ones fail with `.tooLarge` before anything is written. Default 1 MiB.
    public var maxPayloadBytes: Int
    /// How operations are retried on network errors. Default 3 tries.
    public var retry: RetryPolicy
    /// Kinds of job types this producer knows (from its registry or the built-ins); used when a
    /// job gives no kind of its own.
    public var knownKinds: [String: JobKind]
    /// Where `kiln_jobs_enqueued_total` goes (docs/observability.md). Default nil: the global
    /// `MetricsSystem.factory` as it is when the client is made (bootstrap it first).
    public var metricsFactory: (any MetricsFactory)? = nil
    /// The tracer of `kiln.enqueue` spans; each job stores its span's W3C `traceparent`. Default
    /// nil: the global `InstrumentationSystem.tracer` as it is when the client is made. With the
    /// no-op tracer nothing extra is written.
    public var tracer: (any Tracer)? = nil

    /// Options; every default is the one documented on its property.
    public init(
        redis: RedisConfiguration = RedisConfiguration(), prefix: String = "kiln",
        maxPayloadBytes: Int = 1 << 20, knownKinds: [String: JobKind] = [:], retry: RetryPolicy = RetryPolicy()
    ) {
        self.redis = redis
        self.prefix = prefix
        self.maxPayloadBytes = maxPayloadBytes
        self.retry = retry
        self.knownKinds = knownKinds
    }
}

/// One job of a bulk enqueue.
public struct EnqueueRequest: Sendable {
    /// The job type a worker's registry binds (1-200 characters, no spaces).
    public var type: String
    /// The payload as JSON text.
    public var payload: String
    /// Queue, timeout, retries, result TTL, kind and id.
    public var options: JobOptions

    /// A request; `payload` is JSON text and is stored exactly as given.
    public init(type: String, payload: String = "null", options: JobOptions = JobOptions()) {
        self.type = type
        self.payload = payload
        self.options = options
    }
}

extension EnqueueRequest {
    /// Checks the request against Kiln's limits (`JobLimits`), before anything is written.
    /// Throws `KilnError(.invalidInput)` or `.tooLarge` with one sentence naming the problem;
    /// text from the request is echoed with control characters escaped.
    package func check(maxPayloadBytes: Int) throws {
        if type.isEmpty || type.utf8.count > JobLimits.maxTypeBytes || type.contains(where: { $0.isWhitespace }) {
            throw KilnError(.invalidInput, "invalid job type '\(SafeText.escaped(String(type.prefix(40))))': use 1-200 characters without spaces")
        }
        if let c = SafeText.firstControl(in: type) {
            throw KilnError(.invalidInput, "invalid job type '\(SafeText.escaped(String(type.prefix(40))))': control character U+\(String(format: "%04X", c.value)) is not allowed")
        }
        try KeySchema.checkQueueName(options.queue)
        if let id = options.id, !JobID.isValid(id) {
            throw KilnError(.invalidInput, "invalid job id '\(SafeText.escaped(String(id.prefix(40))))': use 1-128 printable characters without spaces, braces or colons")
        }
        let size = payload.utf8.count
        if size > maxPayloadBytes {
            throw KilnError(.tooLarge, "payload is \(size) bytes, over the limit of \(maxPayloadBytes) bytes")
        }
        try JSONText.validate(payload)
        let longest = Duration.milliseconds(JobLimits.maxDurationMs)
        if options.timeout <= .zero || options.timeout > longest {
            throw KilnError(.invalidInput, "timeout must be more than 0 and at most 10 years, got \(Self.describe(options.timeout))")
        }
        if options.retries < 0 || options.retries > JobLimits.maxRetries {
            throw KilnError(.invalidInput, "retries must be from 0 to \(JobLimits.maxRetries), got \(options.retries)")
        }
        if options.resultTTL < .milliseconds(1) || options.resultTTL > longest {
            throw KilnError(.invalidInput, "result TTL must be at least 1ms and at most 10 years, got \(Self.describe(options.resultTTL))")
        }
    }

    private static func describe(_ d: Duration) -> String {
        if d == .zero { return "0" }
        return d < .zero || d > .milliseconds(JobLimits.maxDurationMs) ? "\(d)" : KilnDuration.format(d)
    }
}
