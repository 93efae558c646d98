/// A job as a type: its stored fields are the payload, and the type declares the job's name,
/// its kind and the type of its result.
///
/// Conform to ``IOJob`` (async, many at once on the worker's async loop) or ``CPUJob``
/// (synchronous, in a child process of the worker's pool), which add `run`:
///
/// ```swift
/// struct Resize: CPUJob {
///     static let name = "image.resize"
///     var url: String
///     var width: Int
///     func run(context: JobContext) throws -> Resized { ... }
/// }
///
/// var registry = JobRegistry()
/// registry.register(Resize.self)                            // the one place it is bound
/// let handle = try await kiln.enqueue(Resize(url: u, width: 640))   // JobHandle<Resized>
/// let resized = try await handle.value()
/// ```
///
/// A service that only enqueues can conform to `KilnJob` alone (name, kind and `Output`, no
/// `run`), for example with the types in a module shared with the workers, or bind a handler
/// with ``JobRegistry/register(_:handler:)-(_,(J,JobContext)async throws->J.Output)`` where the
/// handler needs something the job value does not carry (a database pool, a client).
///
/// On the wire the job's `type` is `name` and its payload is the value encoded as JSON, so
/// producers in other languages and `kiln enqueue` reach the same handler (docs/protocol.md).
public protocol KilnJob: Codable, Sendable {
    /// What the job returns; stored as JSON in the job's result.
    associatedtype Output: Codable & Sendable

    /// The job's type on the wire: 1-200 characters, unique among the worker's jobs.
    static var name: String { get }

    /// Where it runs. ``IOJob`` and ``CPUJob`` set it.
    static var kind: JobKind { get }

    /// The options each enqueue of this type starts from (queue, timeout, retries, result TTL).
    /// Default: `JobOptions()`, queue `default`. An enqueue given options of its own uses those.
    static var defaultOptions: JobOptions { get }
}

extension KilnJob {
    /// `JobOptions()`: queue `default`, timeout 5 minutes, 3 retries, results kept 24 hours.
    public static var defaultOptions: JobOptions { JobOptions() }
}

/// An I/O-bound job: `run` is async and runs on the worker's async loop, up to `--concurrency` at
/// once. A timeout or cancel cancels its task, so `run` should honour cancellation (most awaits do).
public protocol IOJob: KilnJob {
    // Restated so that `Output` is inferred from `run`'s return type.
    associatedtype Output
    func run(context: JobContext) async throws -> Output
}

extension IOJob {
    /// I/O jobs run on the worker's async loop.
    public static var kind: JobKind { .io }
}

/// A CPU-bound job: `run` is synchronous and runs in a child process of the worker's pool, one
/// per process. A timeout or cancel kills the process, so `run` need not check for it.
///
/// A binary that runs CPU jobs calls `PoolChild.runIfChild(registry:)` first thing in `main`.
public protocol CPUJob: KilnJob {
    associatedtype Output
    func run(context: JobContext) throws -> Output
}

extension CPUJob {
    /// CPU jobs run in the worker's process pool.
    public static var kind: JobKind { .cpu }
}

/// The output of a job that returns nothing of interest; stored as `{}`.
public struct NoOutput: Codable, Sendable, Equatable {
    /// The empty output.
    public init() {}
}
