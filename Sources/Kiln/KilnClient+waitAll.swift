import Foundation
import KilnRedis

extension KilnClient {
    /// One job to wait for: its id and, if known, its queue (else every queue is searched).
    public struct WaitTarget: Sendable, Hashable {
        public var id: String
        public var queue: String?

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
            let waiters = resultWaiters()
            defer { waiters.close() }
            let outcome = try await waiters.wait(for: waitFor, until: deadline)
            if !outcome.pending.isEmpty, let (since, error) = waiters.trouble {
                // Not "unfinished": Redis could not be asked. Say so, as a single wait does.
                throw KilnError(.redis, "\(outcome.pending.count) of \(targets.count) jobs have not been seen finished after \(KilnDuration.format(timeout)): Redis has been unreachable for the last \(KilnDuration.format(ContinuousClock.now - since)) (\((KilnError.wrap(error) as? KilnError)?.message ?? "\(error)"))")
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

    /// A `ResultWaiters` over this client's connection: the channel is the queue's `done`
    /// channel, a message names ids separated by spaces, a read fetches records in one pipeline.
    func resultWaiters() -> ResultWaiters<WaitKey, JobRecord> {
        let keys = self.keys
        let connection = self.connection
        let address = options.redis.address
        return ResultWaiters(configuration: options.redis, source: .init(
            channel: { keys.doneChannel($0.queue) },
            keys: { channel, message in
                guard let open = channel.firstIndex(of: "{"), let close = channel.lastIndex(of: "}"), open < close else { return [] }
                let queue = String(channel[channel.index(after: open)..<close])
                return message.split(separator: " ").map { WaitKey(queue: queue, id: String($0)) }
            },
            read: { batch in
                let replies = try await connection.pipeline(batch.map { ["HGETALL", keys.job($0.queue, $0.id)] })
                    .checked(command: "HGETALL", address: address)
                return zip(batch, replies).map { key, reply in JobRecord(hash: reply, queue: key.queue) }
            },
            isFinal: { $0.isFinal }))
    }

    /// Each target's queue and current record (`nil`: no such job), retrying Redis trouble until
    /// `deadline`. One pipeline for all of them.
    private func locateAll(_ targets: [WaitTarget], until deadline: ContinuousClock.Instant) async throws -> [(String, JobRecord)?] {
        try await withRetry(until: deadline) {
            let all = targets.contains { $0.queue == nil }
                ? try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
                : []
            var commands: [[String]] = []
            var where_: [[String]] = []
            for t in targets {
                let candidates = t.queue.map { [$0] } ?? all
                where_.append(candidates)
                for q in candidates { commands.append(["HGETALL", keys.job(q, t.id)]) }
            }
            var replies: [RedisValue] = []
            for start in stride(from: 0, to: commands.count, by: 1000) {
                replies += try await connection.pipeline(Array(commands[start..<min(start + 1000, commands.count)]))
                    .checked(command: "HGETALL", address: options.redis.address)
            }
            var i = 0
            return where_.map { candidates -> (String, JobRecord)? in
                defer { i += candidates.count }
                for (k, q) in candidates.enumerated() {
                    if let rec = JobRecord(hash: replies[i + k], queue: q) { return (q, rec) }
                }
                return nil
            }
        }
    }
}
