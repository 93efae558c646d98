import Foundation
import KilnRedis

extension KilnClient {
    /// One job to wait for: its id and, if known, its queue (else every queue is searched).
    public struct WaitTarget: Sendable, Hashable {
        /// The job's id.
        public var id: String
        /// The job's queue; nil = search every queue.
        public var queue: String?

        /// A target; give the queue when you know it (it saves a lookup).
        public init(id: String, queue: String? = nil) {
            self.id = id
            self.queue = queue
        }
    }

    /// How a wait for one job ended.
    public enum WaitOutcome: Sendable {
        /// The job is final (any final status; check `record.status`).
        case final(JobRecord)
        /// The wait's time ran out first; the latest record seen.
        case unfinished(JobRecord)
        /// No such job (never enqueued, or its record expired).
        case missing(id: String)
    }

    /// Waits for many jobs at once and returns one outcome per target, in order. However many
    /// jobs, it holds one subscriber connection besides this client's own pipelined one
    /// (`ResultWaiters`): jobs announce their ends on their queue's `done` channel, and each
    /// waiter reads its record only after the subscription is confirmed, so no end is missed.
    /// Redis trouble is ridden out until `timeout`; jobs not final by then are `.unfinished`.
    public func waitAll(_ targets: [WaitTarget], timeout: Duration) async throws -> [WaitOutcome] {
        let deadline = ContinuousClock.now + timeout
        for t in targets {
            guard JobID.isValid(t.id) else {
                throw KilnError(.invalidInput, "invalid job id '\(SafeText.escaped(String(t.id.prefix(40))))': use 1-128 printable characters without spaces, braces or colons")
            }
            if let q = t.queue { try KeySchema.checkQueueName(q) }
        }
        // Where each job lives, and its record now.
        let located = try await locateAll(targets, until: deadline)
        var waitFor: [WaitKey] = []
        for (t, found) in zip(targets, located) {
            if let (q, rec) = found, !rec.isFinal { waitFor.append(WaitKey(queue: q, id: t.id)) }
        }
        var latest: [WaitKey: JobRecord] = [:]
        var gone: Set<WaitKey> = []
        if !waitFor.isEmpty && timeout > .zero {
            let outcome: ResultWaiters<WaitKey, JobRecord>.Outcome
            do {
                outcome = try await results.wait(for: waitFor, until: deadline)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw KilnError.wrap(error)
            }
            if !outcome.pending.isEmpty, let (since, error) = results.trouble {
                // Not "unfinished": Redis could not be asked. Say so, as a single wait does.
                throw KilnError(.redis, "\(outcome.pending.count) of \(targets.count) jobs have not been seen finished after \(KilnDuration.format(timeout)): Redis has been unreachable for the last \(KilnDuration.format(ContinuousClock.now - since)) (\(Self.describe(error)))")
            }
            latest = outcome.records
            gone = outcome.missing
        }
        return zip(targets, located).map { t, found in
            guard let (q, rec) = found else { return .missing(id: t.id) }
            let key = WaitKey(queue: q, id: t.id)
            if gone.contains(key) { return .missing(id: t.id) }
            let now = latest[key] ?? rec
            return now.isFinal ? .final(now) : .unfinished(now)
        }
    }

    /// A job in a queue, as `ResultWaiters` keys it.
    struct WaitKey: Hashable, Sendable {
        var queue: String
        var id: String
    }

    /// A `ResultWaiters` over `store`: the channel is the queue's done channel, a read fetches
    /// the records of one queue in one pipeline.
    static func resultWaiters(store: KilnStore, configuration: RedisConfiguration) -> ResultWaiters<WaitKey, JobRecord> {
        ResultWaiters(configuration: configuration, source: .init(
            channel: { store.doneChannel(queue: $0.queue) },
            keys: { channel, message in
                guard let (queue, ids) = store.parseDone(channel: channel, message: message) else { return [] }
                return ids.map { WaitKey(queue: queue, id: $0) }
            },
            read: { batch in
                var byQueue: [String: [Int]] = [:]
                for (i, key) in batch.enumerated() { byQueue[key.queue, default: []].append(i) }
                var out = [JobRecord?](repeating: nil, count: batch.count)
                for (queue, positions) in byQueue {
                    let records = try await store.records(queue: queue, ids: positions.map { batch[$0].id })
                    for (p, r) in zip(positions, records) { out[p] = r }
                }
                return out
            },
            isFinal: { $0.isFinal }))
    }

    /// Each target's queue and current record (`nil`: no such job), retrying Redis trouble until
    /// `deadline`. Records are read queue by queue, each in one pipeline.
    private func locateAll(_ targets: [WaitTarget], until deadline: ContinuousClock.Instant) async throws -> [(String, JobRecord)?] {
        try await withRetry(until: deadline) {
            try await store.checkVersion(mark: false)
            let all = targets.contains { $0.queue == nil } ? try await store.queueNames() : []
            var found = [(String, JobRecord)?](repeating: nil, count: targets.count)
            // Look in each candidate queue, in order, for the ids not found yet.
            let queues = Array(Set(targets.compactMap(\.queue))).sorted() + all
            for queue in queues {
                let positions = targets.indices.filter { found[$0] == nil && (targets[$0].queue ?? queue) == queue }
                if positions.isEmpty { continue }
                let records = try await store.records(queue: queue, ids: positions.map { targets[$0].id })
                for (p, r) in zip(positions, records) where r != nil { found[p] = (queue, r!) }
            }
            return found
        }
    }
}
