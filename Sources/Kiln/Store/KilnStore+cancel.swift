import KilnRedis

/// What the `cancel` script did.
public enum CancelReply: Sendable, Equatable {
    /// It was queued or waiting to retry: removed and finalized `cancelled`; it will never run.
    case cancelled
    /// It is running: the cancel is recorded and published; its worker stops it.
    case running
    /// No record (never enqueued, or expired).
    case missing
    /// It had already finished in this status; nothing changed.
    case finished(String)
}

extension CancelReply {
    /// The reply for a word of the cancel script (both versions): `cancelled`, `running`,
    /// `missing` or `finished:STATUS`; nil for anything else.
    init?(word: String) {
        switch word {
        case "cancelled": self = .cancelled
        case "running": self = .running
        case "missing": self = .missing
        case let w where w.hasPrefix("finished:"): self = .finished(String(w.dropFirst(9)))
        default: return nil
        }
    }
}

/// Cancelling a job, and the channel that tells workers about it.
extension KilnStore {
    public func cancel(queue: String, id: String, now: Int64) async throws -> CancelReply {
        let reply = try await run(KilnScripts.cancel, keys: [keys.pending(queue, .io), keys.pending(queue, .cpu), keys.scheduled(queue)],
                                  args: [keys.queuePrefix(queue), id, String(now), keys.cancelChannel])
        guard let r = CancelReply(word: reply.string ?? "") else {
            throw KilnError(.protocolViolation, "unexpected reply to cancel: \(SafeText.escaped(reply.string ?? ""))")
        }
        return r
    }

    /// Listens for cancels of running jobs on `connection` until cancelled; `onCancel` gets the
    /// queue and id of each. `onReconnect` runs after the subscription was re-established
    /// (messages published meanwhile are lost; the records still say `cancel_requested`).
    public func listenForCancels(on connection: RedisBlockingConnection, onReconnect: @escaping @Sendable () -> Void,
                                 onCancel: @escaping @Sendable (_ queue: String, _ id: String) -> Void) async throws {
        try await Self.listenForCancels(channel: keys.cancelChannel, on: connection, onReconnect: onReconnect, onCancel: onCancel)
    }

    /// `listenForCancels` on `channel`, for both protocol versions (same channel, same messages).
    static func listenForCancels(channel: String, on connection: RedisBlockingConnection, onReconnect: @escaping @Sendable () -> Void,
                                 onCancel: @escaping @Sendable (_ queue: String, _ id: String) -> Void) async throws {
        try await connection.subscribe([channel], onReconnect: onReconnect) { message in
            // The message is "prefix:{queue}: id" (see the cancel script).
            guard let text = message.array.last?.string,
                  let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close,
                  let id = text.split(separator: " ").last
            else { return }
            onCancel(String(text[text.index(after: open)..<close]), String(id))
        }
    }
}

extension KilnScripts {
    /// KEYS: pending:io, pending:cpu, scheduled. ARGV: P, id, now, cancel channel.
    /// Returns 'cancelled' (it was queued or waiting to retry: removed, will never run),
    /// 'running' (cancel recorded and published; the worker stops it), 'missing', or
    /// 'finished:STATUS' when it had already finished (nothing changes).
    public static let cancel = Script(name: "cancel", body: """
    local P, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
    local jk = P .. 'job:' .. id
    if redis.call('EXISTS', jk) == 0 then return 'missing' end
    local st = redis.call('HGET', jk, 'status')
    if st == 'queued' or st == 'retrying' or not st then
      redis.call('LREM', KEYS[1], 0, id)
      redis.call('LREM', KEYS[2], 0, id)
      redis.call('ZREM', KEYS[3], id)
      finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled before it ran')
      return 'cancelled'
    end
    if st == 'running' then
      redis.call('HSET', jk, 'cancel_requested', 1)
      redis.call('PUBLISH', ARGV[4], P .. ' ' .. id)
      return 'running'
    end
    return 'finished:' .. st
    """)
}
