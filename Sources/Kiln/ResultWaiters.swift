import Foundation
import KilnRedis
import Synchronization

/// Waits for any number of jobs over one subscriber connection, shared by every waiter of a
/// client (docs/protocol.md, "Waiting for results").
///
/// A waiter registers its keys first; a key is read only once the subscription to its channel
/// is confirmed, and read again on every message naming it and after every resubscription. So a
/// result can never land unseen between the read and the subscription: if it was final before
/// the confirmation, the read sees it; if after, a message arrives. Messages are only hints (a
/// broken connection loses them); the record that `Source.read` returns is the truth.
///
/// The subscription and the reads serve every waiter at once and outlive any one of them, so
/// they run in a task of their own (the "pump"), started by the first waiter and ended after
/// `idleTimeout` without waiters, or by `close()`.
package final class ResultWaiters<Key: Hashable & Sendable, Record: Sendable>: Sendable {
    /// Where records and notifications come from.
    package struct Source: Sendable {
        /// The channel that announces `key`'s record becoming final.
        package var channel: @Sendable (Key) -> String
        /// The keys a message on `channel` names.
        package var keys: @Sendable (_ channel: String, _ message: String) -> [Key]
        /// Reads records; `nil` where there is none. Called with at most `readBatch` keys.
        package var read: @Sendable ([Key]) async throws -> [Record?]
        /// Whether a record is final (the wait for it is over).
        package var isFinal: @Sendable (Record) -> Bool

        package init(channel: @escaping @Sendable (Key) -> String,
                    keys: @escaping @Sendable (String, String) -> [Key],
                    read: @escaping @Sendable ([Key]) async throws -> [Record?],
                    isFinal: @escaping @Sendable (Record) -> Bool) {
            self.channel = channel
            self.keys = keys
            self.read = read
            self.isFinal = isFinal
        }
    }

    /// What one wait saw: the final record of each key that ended, the last record read of the
    /// others, and the keys that have no record at all.
    package struct Outcome: Sendable {
        package var records: [Key: Record] = [:]
        package var missing: Set<Key> = []
        /// Keys neither final nor missing when the wait ended (the deadline passed).
        package var pending: Set<Key> = []
    }

    let configuration: RedisConfiguration
    let source: Source
    let readBatch: Int
    let idleTimeout: Duration
    let state = Mutex(WaitersState<Key, Record>())

    package init(configuration: RedisConfiguration, source: Source, readBatch: Int = 500, idleTimeout: Duration = .seconds(10)) {
        self.configuration = configuration
        self.source = source
        self.readBatch = max(1, readBatch)
        self.idleTimeout = idleTimeout
    }

    deinit { close() }

    /// Waits until every key's record is final or missing, or `deadline` passes. Throws only
    /// `CancellationError` (when the calling task is cancelled); Redis trouble is retried until
    /// the deadline, and then the outcome lists the keys still pending.
    package func wait(for keys: [Key], until deadline: ContinuousClock.Instant) async throws -> Outcome {
        if keys.isEmpty { return Outcome() }
        let token = state.withLock { s -> Int in
            s.nextToken += 1
            s.announced.insert(s.nextToken)
            return s.nextToken
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // The deadline: whatever is still pending then is reported as pending.
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.end(token, error: nil)
            }
            defer { group.cancelAll() }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Outcome, Error>) in
                    register(token, keys: keys, continuation: c)
                }
            } onCancel: {
                self.end(token, error: CancellationError())
            }
        }
    }

    /// Ends every wait (each throws `CancellationError`) and stops the subscription.
    package func close() {
        let (ended, pump, conn) = state.withLock { s -> ([CheckedContinuation<Outcome, Error>], Task<Void, Never>?, RedisBlockingConnection?) in
            s.closed = true
            let ended = s.waiters.values.compactMap(\.continuation)
            s.waiters = [:]
            s.byKey = [:]
            let pump = s.pump
            s.pump = nil
            s.wake?.finish()
            s.wake = nil
            return (ended, pump, s.connection)
        }
        for c in ended { c.resume(throwing: CancellationError()) }
        conn?.close()
        pump?.cancel()
    }

    /// The subscriber connection, while there is one. Its thread holds it until the thread ends,
    /// so a weak reference to it going nil tells a test that thread is gone.
    package var subscriberConnection: AnyObject? { state.withLock { $0.connection } }

    /// How many keys are being waited for (for tests and metrics).
    package var waitingKeys: Int { state.withLock { $0.byKey.count } }

    /// Since when, and why, the subscription or the reads have been failing; `nil` while they
    /// work. A wait that ends at its deadline uses it to tell "not finished" from "could not see".
    package var trouble: (since: ContinuousClock.Instant, error: Error)? { state.withLock { $0.trouble } }
}

/// The shared state of `ResultWaiters`, under its mutex.
struct WaitersState<Key: Hashable & Sendable, Record: Sendable>: Sendable {
    struct Waiter: Sendable {
        var remaining: Set<Key>
        var outcome = ResultWaiters<Key, Record>.Outcome()
        var continuation: CheckedContinuation<ResultWaiters<Key, Record>.Outcome, Error>?
    }

    var nextToken = 0
    var waiters: [Int: Waiter] = [:]
    var byKey: [Key: Set<Int>] = [:]
    /// Tokens handed out whose wait has not registered yet, and those of them that ended
    /// (deadline or cancel) before registering.
    var announced: Set<Int> = []
    var ended: [Int: Error?] = [:]
    /// Channels wanted, and those Redis has confirmed on the current connection.
    var channels: Set<String> = []
    var confirmed: Set<String> = []
    /// Bumped when `channels` grows: the subscription restarts with the new set.
    var version = 0
    var connection: RedisBlockingConnection?
    var dirty: Set<Key> = []
    var pump: Task<Void, Never>?
    /// Which pump is current: a pump that stopped for idleness may still be unwinding.
    var pumpID = 0
    var wake: AsyncStream<Void>.Continuation?
    var lastActive = ContinuousClock.now
    var trouble: (since: ContinuousClock.Instant, error: Error)?
    var closed = false
}
