import Dispatch
import Kiln
import KilnRedis
import Logging
import Synchronization

/// Writes attempts' outcomes in batches: every outcome that arrives while a write is in flight
/// goes out with the next one, as one `finish` call per queue (up to 500 attempts each). A
/// drain of many short jobs then costs one script call per batch instead of one per job.
///
/// Like a single write, a batch is retried through Redis outages until it is stored (an outcome
/// is never dropped because Redis blinked); error replies, which retrying cannot fix, give up
/// after five tries and leave the jobs to the reaper.
final class FinishBatcher: Sendable {
    /// One attempt's outcome, as `finish` takes it.
    struct Entry: Sendable {
        let queue: String
        let outcome: AttemptOutcome
        let reply: Reply
    }

    /// Where the status of one entry lands; its job's task awaits it.
    final class Reply: Sendable {
        private let state = Mutex<(status: FinishReply??, waiter: CheckedContinuation<FinishReply?, Never>?)>((nil, nil))

        func resume(returning status: FinishReply?) {
            let w = state.withLock { s -> CheckedContinuation<FinishReply?, Never>? in
                s.status = .some(status)
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume(returning: status)
        }

        func value() async -> FinishReply? {
            await withCheckedContinuation { c in
                let ready: FinishReply?? = state.withLock { s in
                    if let st = s.status { return .some(st) }
                    s.waiter = c
                    return .none
                }
                if let ready { c.resume(returning: ready) }
            }
        }
    }

    private struct State {
        var pending: [Entry] = []
        var writing = false
    }

    static let chunk = KilnStore.finishChunk

    private let state = Mutex(State())
    private let store: KilnStore
    private let outage: WriteOutage
    private let logger: Logger

    init(store: KilnStore, outage: WriteOutage, logger: Logger) {
        self.store = store
        self.outage = outage
        self.logger = logger
    }

    /// Writes one outcome; returns what the write did (`.stale` if the attempt no longer held
    /// the lease), or nil if Redis refused the write for good.
    func finish(queue: String, _ outcome: AttemptOutcome) async -> FinishReply? {
        let reply = Reply()
        let writer = state.withLock { s -> Bool in
            s.pending.append(Entry(queue: queue, outcome: outcome, reply: reply))
            if s.writing { return false }
            s.writing = true
            return true
        }
        // The first caller while no write is in flight writes (its own outcome and whatever
        // arrives meanwhile) on its own task: no hop to another task. Nothing in a write checks
        // for cancellation (a stopped job's task is cancelled), and its retry pause ignores it.
        if writer, await writeOnce() {
            // More arrived meanwhile: a task of its own writes the rest, so this job's task is
            // not kept busy with other jobs' outcomes (and is not cancelled with it).
            Task { await self.drain() }
        }
        return await reply.value()
    }

    /// Writes what is pending as one batch; returns whether more is pending (and the caller
    /// stays the writer) or not (and nobody is).
    private func writeOnce() async -> Bool {
        let batch = state.withLock { s -> [Entry] in
            defer { s.pending.removeAll(keepingCapacity: true) }
            return s.pending
        }
        await write(batch)
        return state.withLock { s in
            if s.pending.isEmpty { s.writing = false }
            return s.writing
        }
    }

    /// Writes batches until nothing is pending.
    private func drain() async {
        while await writeOnce() {}
    }

    private func write(_ batch: [Entry]) async {
        // Group by queue, keeping order; each group goes in chunks.
        var groups: [(queue: String, entries: ArraySlice<Entry>)] = []
        var byQueue: [String: [Entry]] = [:]
        var order: [String] = []
        for e in batch {
            if byQueue[e.queue] == nil { order.append(e.queue) }
            byQueue[e.queue, default: []].append(e)
        }
        for q in order {
            let all = byQueue[q]!
            for start in stride(from: 0, to: all.count, by: Self.chunk) {
                groups.append((q, all[start..<min(all.count, start + Self.chunk)]))
            }
        }
        var backoff = Backoff(initial: .milliseconds(50), max: .seconds(1))
        var failingSince: ContinuousClock.Instant?
        var serverErrors = 0
        var remaining = groups
        while !remaining.isEmpty {
            var failed: [(queue: String, entries: ArraySlice<Entry>)] = []
            var lastError: Error?
            do {
                // Every try sends the same outcomes (each with the time its attempt ended), so a
                // try whose reply was lost is recognised by the script on the next one.
                let replies = try await store.finish(remaining.map { g in (g.queue, ArraySlice(g.entries.map(\.outcome))) })
                for (group, reply) in zip(remaining, replies) {
                    switch reply {
                    case .failure(let e):
                        lastError = e
                        if !e.isTransient { serverErrors += 1 }
                        failed.append(group)
                    case .success(let statuses):
                        for (e, status) in zip(group.entries, statuses) { e.reply.resume(returning: status) }
                    }
                }
            } catch {
                lastError = error
                if let e = error as? RedisError, !e.isTransient { serverErrors += 1 }
                failed = remaining
            }
            if failed.isEmpty {
                if failingSince != nil { outage.ended(logger) }
                return
            }
            if serverErrors >= 5 {
                logger.error("could not write \(failed.reduce(0) { $0 + $1.entries.count }) job outcome(s), giving up: \(lastError.map { "\($0)" } ?? "?")")
                for item in failed { for e in item.entries { e.reply.resume(returning: nil) } }
                if failingSince != nil { outage.ended(logger) }
                return
            }
            if failingSince == nil {
                failingSince = .now
                outage.began(lastError ?? RedisError(.connectionLost, "write failed"), logger)
            }
            // A capped retry of a write while Redis is away, not a poll for state. The pause
            // ignores cancellation: the writer may be a stopped job's (cancelled) task.
            await Self.pause(backoff.next())
            remaining = failed
        }
    }

    /// Sleeps for `d` whether or not the calling task is cancelled.
    static func pause(_ d: Duration) async {
        let ns = d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(ns))) { c.resume() }
        }
    }
}
