import Foundation
import KilnRedis
import Synchronization

extension ResultWaiters {
    typealias Continuation = CheckedContinuation<Outcome, Error>

    func register(_ token: Int, keys: [Key], continuation: Continuation) {
        // nil: registered, wait; else the wait ended before it registered.
        let early = state.withLock { s -> Result<Outcome, Error>? in
            s.announced.remove(token)
            if s.closed { return .failure(CancellationError()) }
            if let ended = s.ended.removeValue(forKey: token) {
                if let ended { return .failure(ended) }
                var o = Outcome(); o.pending = Set(keys)
                return .success(o)
            }
            var w = WaitersState<Key, Record>.Waiter(remaining: Set(keys))
            w.continuation = continuation
            s.waiters[token] = w
            s.lastActive = .now
            var grew = false
            for key in w.remaining {
                s.byKey[key, default: []].insert(token)
                let channel = source.channel(key)
                if s.channels.insert(channel).inserted { grew = true }
                // Read now only if the subscription already covers it; else after the confirmation.
                if s.confirmed.contains(channel) { s.dirty.insert(key) }
            }
            if grew {
                s.version += 1
                s.connection?.close()  // the pump resubscribes with the larger set
            }
            if s.pump == nil { startPump(&s) } else { s.wake?.yield() }
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    /// Ends a wait early: by its deadline (`error == nil`, the outcome lists what is pending) or
    /// by cancellation. A no-op for a wait that already ended.
    func end(_ token: Int, error: Error?) {
        let done = state.withLock { s -> (Continuation, Outcome)? in
            guard var w = s.waiters.removeValue(forKey: token) else {
                // Not registered yet: register() will end it at once.
                if s.announced.contains(token) && s.ended[token] == nil { s.ended[token] = .some(error) }
                return nil
            }
            for key in w.remaining {
                s.byKey[key]?.remove(token)
                if s.byKey[key]?.isEmpty == true { s.byKey[key] = nil }
            }
            w.outcome.pending = w.remaining
            return w.continuation.map { ($0, w.outcome) }
        }
        guard let (c, outcome) = done else { return }
        if let error { c.resume(throwing: error) } else { c.resume(returning: outcome) }
    }

    private func startPump(_ s: inout WaitersState<Key, Record>) {
        let (stream, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        s.wake = wake
        s.pumpID += 1
        let id = s.pumpID
        wake.yield()
        // Unstructured on purpose: the pump serves every waiter of this client and must outlive
        // the one whose call started it. It ends when idle, on close(), or when the client goes.
        s.pump = Task { [weak self] in
            await self?.pump(id, stream)
        }
    }

    private func isCurrent(_ id: Int) -> Bool { state.withLock { $0.pumpID == id && !$0.closed } }

    private func pump(_ id: Int, _ wakes: AsyncStream<Void>) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in await self.subscribeLoop(id) }
            group.addTask { [self] in await self.readLoop(id, wakes) }
            group.addTask { [self] in
                // Ticks, so that an idle read loop notices it is idle.
                while !Task.isCancelled {
                    try? await Task.sleep(for: idleTimeout / 2)
                    state.withLock { s in if s.pumpID == id { s.wake?.yield() } }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Keeps one subscription to every wanted channel, restarting it when the set grows, and
    /// marks every waiting key for a read after each confirmation (a reconnect may have lost
    /// messages).
    private func subscribeLoop(_ id: Int) async {
        while !Task.isCancelled {
            let conn = RedisBlockingConnection(configuration: configuration)
            let snapshot = state.withLock { s -> (Set<String>, Int)? in
                guard s.pumpID == id, !s.closed else { return nil }
                s.connection?.close()
                s.connection = conn
                s.confirmed = []
                return (s.channels, s.version)
            }
            guard let (channels, version) = snapshot else { conn.close(); return }
            try? await withTaskCancellationHandler {
                try await conn.subscribe(channels.sorted(), onReconnect: { [self] in
                    state.withLock { s in if s.version == version { s.confirmed = [] } }
                }, onConfirm: { [self] channel in
                    confirmed(channel, version: version)
                }, onError: { [self] error in
                    noteTrouble(error)
                    // A refusal (NOPERM, a wrong password) will not pass: end the waits with it
                    // rather than let them run into their deadlines.
                    if let e = error as? RedisError, !e.isTransient { failAll(e) }
                }, handler: { [self] message in
                    notified(message)
                })
            } onCancel: {
                conn.close()
            }
            conn.close()
        }
    }

    private func failAll(_ error: Error) {
        let ended = state.withLock { s -> [Continuation] in
            let ended = s.waiters.values.compactMap(\.continuation)
            s.waiters = [:]
            s.byKey = [:]
            s.dirty = []
            return ended
        }
        for c in ended { c.resume(throwing: error) }
    }

    private func noteTrouble(_ error: Error) {
        state.withLock { s in s.trouble = (s.trouble?.since ?? .now, error) }
    }

    private func confirmed(_ channel: String, version: Int) {
        state.withLock { s in
            guard s.version == version else { return }
            s.trouble = nil
            s.confirmed.insert(channel)
            for key in s.byKey.keys where source.channel(key) == channel { s.dirty.insert(key) }
            s.wake?.yield()
        }
    }

    private func notified(_ message: RedisValue) {
        let parts = message.array
        // Lossy: an id written as bytes that are not UTF-8 (by another producer) must not hide the
        // other ids of its message.
        guard parts.count >= 3, let channel = parts[1].string, let text = parts[2].lossyString else { return }
        let keys = source.keys(channel, text)
        state.withLock { s in
            var any = false
            for key in keys where s.byKey[key] != nil { s.dirty.insert(key); any = true }
            if any { s.wake?.yield() }
        }
    }

    /// Reads the marked keys in batches and settles the waits they end. Stops after
    /// `idleTimeout` without waiters.
    private func readLoop(_ id: Int, _ wakes: AsyncStream<Void>) async {
        var pause = Backoff(initial: .milliseconds(50), max: .seconds(1))
        var iterator = wakes.makeAsyncIterator()
        while !Task.isCancelled && isCurrent(id) {
            let batch = state.withLock { s -> [Key] in
                // A key marked again while its read was in flight, and settled by that read, has
                // no waiter any more: it is dropped here, not read a second time.
                s.dirty = s.dirty.filter { s.byKey[$0] != nil }
                let keys = Array(s.dirty.prefix(readBatch))
                for k in keys { s.dirty.remove(k) }
                return keys
            }
            if batch.isEmpty {
                if stopIfIdle(id) { return }
                if await iterator.next() == nil { return }
                continue
            }
            do {
                let records = try await source.read(batch)
                settle(batch, records)
                pause.reset()
            } catch {
                noteTrouble(error)
                // Redis away or a read failed: try these keys again after a capped pause.
                state.withLock { s in for k in batch where s.byKey[k] != nil { s.dirty.insert(k) } }
                try? await Task.sleep(for: pause.next())
            }
        }
    }

    /// Stops this pump if nobody has waited for `idleTimeout`.
    private func stopIfIdle(_ id: Int) -> Bool {
        let (stop, conn) = state.withLock { s -> (Bool, RedisBlockingConnection?) in
            guard s.pumpID == id else { return (true, nil) }
            guard s.waiters.isEmpty, ContinuousClock.now - s.lastActive >= idleTimeout else { return (false, nil) }
            s.pump = nil
            s.pumpID += 1
            s.wake?.finish()
            s.wake = nil
            s.channels = []
            s.confirmed = []
            s.version += 1
            let conn = s.connection
            s.connection = nil
            return (true, conn)
        }
        conn?.close()
        return stop
    }

    private func settle(_ keys: [Key], _ records: [Record?]) {
        var finished: [(Continuation, Outcome)] = []
        state.withLock { s in
            s.lastActive = .now
            if !s.confirmed.isEmpty { s.trouble = nil }
            for (i, key) in keys.enumerated() {
                guard let tokens = s.byKey[key] else { continue }
                let record = i < records.count ? records[i] : nil
                let final = record.map(source.isFinal) ?? true
                for token in tokens {
                    // Taken out while it changes: a copy left in the dictionary would make every
                    // change copy its sets (quadratic for a wait on 10,000 jobs).
                    guard var w = s.waiters.removeValue(forKey: token) else { continue }
                    if let record { w.outcome.records[key] = record } else { w.outcome.missing.insert(key) }
                    if final { w.remaining.remove(key) }
                    if w.remaining.isEmpty {
                        if let c = w.continuation { finished.append((c, w.outcome)) }
                    } else {
                        s.waiters[token] = w
                    }
                }
                if final { s.byKey[key] = nil }
            }
        }
        for (c, o) in finished { c.resume(returning: o) }
    }
}
