import KilnRedis

/// What the `cancel` script did.
package enum CancelReply: Sendable, Equatable {
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


/// Cancelling jobs: `cancel`, many ids per call.
extension KilnStore {
    /// Cancels jobs of `queue`: a queued or retrying one ends `cancelled` at once (announced on
    /// the queue's done channel); a running one gets the cancel flag and is published on
    /// `P:cancel` for its worker. Up to 500 ids per atomic call, all calls in one pipeline (an id
    /// named twice goes in two calls, in order).
    package func cancel(queue: String, ids: [String], now: Int64) async throws -> [CancelReply] {
        let replies = try await runBatched(
            KilnScripts.cancel,
            keys: [keys.jobs(queue), keys.later(queue), keys.ready(queue, .io), keys.ready(queue, .cpu), keys.expiry(queue)],
            head: [keys.queuePrefix(queue), String(now), keys.cancelChannel], items: ids.map { [$0] })
        return try replies.map { r in
            guard let reply = r.string.flatMap(CancelReply.init(word:)) else { throw unexpected(KilnScripts.cancel, r) }
            return reply
        }
    }

    /// `cancel` of one job (`KilnStore.cancel`'s shape).
    package func cancel(queue: String, id: String, now: Int64) async throws -> CancelReply {
        try await cancel(queue: queue, ids: [id], now: now)[0]
    }

    /// Listens for cancels of running jobs on `connection` until cancelled; `onCancel` gets the
    /// queue and id of each (`P:cancel`, messages "P:{queue}: id").
    package func listenForCancels(on connection: RedisBlockingConnection, onReconnect: @escaping @Sendable () -> Void,
                                 onCancel: @escaping @Sendable (_ queue: String, _ id: String) -> Void) async throws {
        try await KilnStore.listenForCancels(channel: keys.cancelChannel, on: connection, onReconnect: onReconnect, onCancel: onCancel)
    }
}

extension KilnStore {
    /// `listenForCancels` on `channel`.
    static func listenForCancels(channel: String, on connection: RedisBlockingConnection, onReconnect: @escaping @Sendable () -> Void,
                                 onCancel: @escaping @Sendable (_ queue: String, _ id: String) -> Void) async throws {
        try await connection.subscribe([channel], onReconnect: onReconnect) { message in
            // The message is "prefix:{queue}: id" (see the cancel script).
            guard let text = message.array.last?.lossyString,
                  let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close,
                  let id = text.split(separator: " ").last
            else { return }
            onCancel(String(text[text.index(after: open)..<close]), String(id))
        }
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:later, Q:ready:io, Q:ready:cpu, Q:expiry. ARGV: Q, now, cancel channel,
    /// then ids. Per id: `cancelled` (was queued or retrying: finalized and taken off its list),
    /// `running` (flag set, `PUBLISH P:cancel "Q id"`), `missing`, or `finished:STATUS`.
    package static let cancel = Script(name: "cancel", body: """
    -- cancel
    -- KEYS: Q:jobs, Q:later, Q:ready:io, Q:ready:cpu, Q:expiry
    -- ARGV: Q, now, cancel channel, then ids
    local q, now, channel = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT), ARGV[3]
    if not now then return refuse('cancel', 'now must be a time in ms') end
    local ids = {}
    for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
    if #ids == 0 then return refuse('cancel', 'expected at least one id') end
    local twice = repeated(ids)
    if twice then return refuse('cancel', 'job ' .. twice .. ' is named twice') end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local answers = {}
    for j, id in ipairs(ids) do
      local r = load(raws[j])
      if r == nil then
        answers[j] = 'missing'
      elseif r == false then
        answers[j] = 'finished:failed'
      elseif r[F_STATUS] == QUEUED or r[F_STATUS] == RETRYING then
        redis.call('LREM', KEYS[3], 1, id)
        redis.call('LREM', KEYS[4], 1, id)
        redis.call('ZREM', KEYS[2], id)
        finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled before it ran'); put(id, r)
        answers[j] = 'cancelled'
      elseif r[F_STATUS] == RUNNING then
        if not has_flag(r, CANCEL_FLAG) then
          r[F_FLAGS] = (int_in(r[F_FLAGS], 0, MAX_COUNT) and r[F_FLAGS] or 0) + CANCEL_FLAG; put(id, r)
        end
        redis.call('PUBLISH', channel, q .. ' ' .. id)
        answers[j] = 'running'
      else
        answers[j] = 'finished:' .. NAMES[r[F_STATUS]]
      end
    end
    commit(KEYS[1], KEYS[5], q)
    return answers
    """)
}
