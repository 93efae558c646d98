import KilnRedis

/// How one attempt ended, as the worker writes it with `finish`/`finish_many`.
package struct AttemptOutcome: Sendable, Equatable {
    package enum Ending: String, Sendable {
        case succeeded, failed, cancelled
        case timedOut = "timed_out"
    }

    package var id: String
    /// The fencing token the attempt was leased with.
    package var token: String
    package var ending: Ending
    /// The result as JSON text (for `succeeded`), else empty.
    package var result: String
    package var errorType: String
    package var errorMessage: String
    /// Delay before a retry, ms; nil: do not retry.
    package var retryDelayMs: Int64?
    /// When the attempt ended (ms). Every try of one write sends the same value: a retried write
    /// whose first try was applied is recognised by it.
    package var endedAt: Int64

    package init(id: String, token: String, ending: Ending, result: String = "", errorType: String = "", errorMessage: String = "",
                retryDelayMs: Int64? = nil, endedAt: Int64) {
        self.id = id
        self.token = token
        self.ending = ending
        self.result = result
        self.errorType = errorType
        self.errorMessage = errorMessage
        self.retryDelayMs = retryDelayMs
        self.endedAt = endedAt
    }

    var args: [String] {
        [id, token, ending.rawValue, result, errorType, errorMessage, String(retryDelayMs ?? -1), String(endedAt)]
    }
}

/// What a fenced write of an attempt's outcome did.
package enum FinishReply: Sendable, Equatable {
    /// Written (now, or by an earlier try of the same call): the job is left in this status.
    case left(JobStatus)
    /// The attempt no longer holds the lease (a newer attempt owns the job): nothing changed.
    case stale

    init?(_ word: String?) {
        if word == "stale" { self = .stale } else if let s = word.flatMap(JobStatus.init(rawValue:)) { self = .left(s) } else { return nil }
    }

    /// The status word (`stale` for `.stale`).
    package var word: String {
        switch self {
        case .left(let s): return s.rawValue
        case .stale: return "stale"
        }
    }
}

/// Ending attempts: `finish`, many attempts per call.
extension KilnStore {
    /// Attempts per `finish` call.
    package static let finishChunk = 500

    /// Writes the outcomes of many attempts, one atomic `finish` call per element of `groups`
    /// (each of one queue, at most `finishChunk` attempts), all in one pipeline. Per group: the
    /// reply of each attempt in order, or the error reply Redis gave that call (a transport
    /// failure throws). A reply Kiln does not know is `nil`. A group naming a job twice (two
    /// attempts of it) goes in several calls, in order, so the second sees the first's write.
    ///
    /// The script takes one `now` per call, not per attempt: a group is written with the latest
    /// `endedAt` of its attempts (as `finished_at`, and the base of a retry's delay). A retry of
    /// the same group sends the same value, which is how the script recognises its own write.
    package func finish(_ groups: [(queue: String, attempts: ArraySlice<AttemptOutcome>)]) async throws -> [Result<[FinishReply?], RedisError>] {
        if let bad = groups.first(where: { $0.attempts.count > Self.finishChunk }) {
            throw KilnError(.invalidInput, "a finish call to queue '\(SafeText.escaped(bad.queue))' holds \(bad.attempts.count) attempts; split them into calls of at most \(Self.finishChunk)")
        }
        // Per group, its pieces (one call each).
        let pieces = groups.map { Self.pieces($0.attempts, max: Self.finishChunk, id: \.id) }
        var calls: [ScriptRunner.Call] = []
        for (g, gp) in zip(groups, pieces) {
            let now = String(g.attempts.map(\.endedAt).max() ?? 0)
            for piece in gp {
                var args = [keys.queuePrefix(g.queue), now]
                args.reserveCapacity(2 + piece.count * 7)
                for a in piece {
                    args += [a.id, a.token, a.ending.rawValue, a.result, a.errorType, a.errorMessage, String(a.retryDelayMs ?? -1)]
                }
                calls.append(ScriptRunner.Call(script: KilnScripts.finish,
                                               keys: [keys.jobs(g.queue), keys.leases(g.queue), keys.later(g.queue), keys.dead(g.queue), keys.expiry(g.queue)],
                                               args: args))
            }
        }
        var replies = try await runner.runPipelined(calls)[...]
        return zip(groups, pieces).map { g, gp in
            var words: [String?] = []
            var failure: RedisError?
            for piece in gp {
                let reply = replies.removeFirst()
                if case .error(let text) = reply {
                    failure = failure ?? RedisError.reply(text, command: "script finish", address: address)
                }
                let w = reply.array.map(\.string)
                words += (0..<piece.count).map { $0 < w.count ? w[$0] : nil }
            }
            if let failure { return .failure(failure) }
            return .success(words.map { FinishReply($0) })
        }
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:leases, Q:later, Q:dead, Q:expiry. ARGV: Q, now, then 7 per attempt: id,
    /// token, outcome (succeeded|failed|timed_out|cancelled), result_json, error_type,
    /// error_message, retry_delay_ms (-1: no retry). Fenced: `stale` unless the job is running
    /// under the token (or a retry of this call finds its own write). Returns the status each
    /// attempt left its job in, in order. One `Q:done` message for the jobs it made final.
    package static let finish = Script(name: "finish", body: """
    -- finish
    -- KEYS: Q:jobs, Q:leases, Q:later, Q:dead, Q:expiry
    -- ARGV: Q, now, then 7 per attempt: id, token, outcome, result_json, error_type, error_message, retry_delay_ms
    local q, now = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT)
    if not now then return refuse('finish', 'now must be a time in ms') end
    local n = (#ARGV - 2) / 7
    if n < 1 or n ~= math.floor(n) then return refuse('finish', 'expected 7 arguments per attempt after Q and now') end
    local ids = {}
    local outcomes = {succeeded = true, failed = true, timed_out = true, cancelled = true}
    for j = 1, n do
      local b = 2 + (j - 1) * 7
      ids[j] = ARGV[b + 1]
      if not arg_int(ARGV[b + 2], 0, MAX_COUNT) then return refuse('finish', 'attempt ' .. j .. ': token must be a whole number') end
      if not outcomes[ARGV[b + 3]] then return refuse('finish', 'attempt ' .. j .. ': outcome must be succeeded, failed, timed_out or cancelled') end
      if not arg_int(ARGV[b + 7], -1, MAX_MS) then return refuse('finish', 'attempt ' .. j .. ': retry_delay_ms must be -1-' .. MAX_MS) end
    end
    local twice = repeated(ids)
    if twice then return refuse('finish', 'job ' .. twice .. ' is named twice') end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local statuses, unleased, later, dead = {}, {}, {}, {}
    for j = 1, n do
      local b = 2 + (j - 1) * 7
      local id, token, outcome = ids[j], tonumber(ARGV[b + 2]), ARGV[b + 3]
      local result, error_type, error_message, delay = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], tonumber(ARGV[b + 7])
      local r = load(raws[j])
      if r == false then
        local broken_rec = broken(now, 'record is not a version 3 record')
        finalize(id, broken_rec, FAILED, now); put(id, broken_rec)
        unleased[#unleased + 1] = id
        statuses[j] = 'failed'
      elseif not r or r[F_TOKEN] ~= token then
        statuses[j] = 'stale'
      elseif r[F_STATUS] ~= RUNNING then
        -- This call's own write, seen again by a retry after a dropped connection, is not stale:
        -- same token, same time, and a status and error this outcome leads to.
        local st = r[F_STATUS]
        local same_error = r[F_ERROR_TYPE] == error_type or st == CANCELLED
        local own_final = st >= SUCCEEDED and r[F_FINISHED] == now
          and ((outcome == 'succeeded') == (st == SUCCEEDED)) and (st == SUCCEEDED or same_error)
        local own_retry = st == RETRYING and r[F_RETRY_AT] == now + delay and r[F_ERROR_TYPE] == error_type
        if own_final or own_retry then
          statuses[j] = NAMES[r[F_STATUS]]
        else
          statuses[j] = 'stale'
        end
      else
        unleased[#unleased + 1] = id
        local bad = (not int_in(r[F_ATTEMPTS], 0, MAX_COUNT) and 'attempts') or (not int_in(r[F_MAX], 1, 1001) and 'max_attempts')
          or (not int_in(r[F_TTL], 1, MAX_MS) and 'result_ttl_ms') or nil
        if bad then
          malformed(id, r, now, bad)
        elseif outcome == 'succeeded' then
          -- An earlier attempt (or a reclaim) may have left an error behind.
          r[F_RESULT] = result; r[F_ERROR_TYPE] = ''; r[F_ERROR_MESSAGE] = ''; r[F_RETRY_AT] = 0
          finalize(id, r, SUCCEEDED, now)
        elseif has_flag(r, CANCEL_FLAG) then
          finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled while running')
        elseif outcome == 'cancelled' then
          finalize(id, r, CANCELLED, now, error_type, error_message)
        elseif delay >= 0 and r[F_ATTEMPTS] < r[F_MAX] then
          r[F_STATUS] = RETRYING; r[F_RETRY_AT] = now + delay
          r[F_ERROR_TYPE] = error_type; r[F_ERROR_MESSAGE] = error_message
          later[#later + 1] = now + delay; later[#later + 1] = id
        elseif r[F_MAX] > 1 then
          finalize(id, r, DEAD, now, error_type, error_message)
          dead[#dead + 1] = now; dead[#dead + 1] = id
        else
          finalize(id, r, outcome == 'timed_out' and TIMED_OUT or FAILED, now, error_type, error_message)
        end
        put(id, r)
        statuses[j] = NAMES[r[F_STATUS]]
      end
    end
    if #unleased > 0 then redis.call('ZREM', KEYS[2], unpack(unleased)) end
    if #later > 0 then redis.call('ZADD', KEYS[3], unpack(later)) end
    if #dead > 0 then redis.call('ZADD', KEYS[4], unpack(dead)) end
    commit(KEYS[1], KEYS[5], q)
    return statuses
    """)
}

extension KilnStore {
    /// Writes one attempt's outcome (`finish` with one attempt); for tools and tests, the worker
    /// batches through `finish(_:)`. A refused call throws its error reply.
    package func finishOne(queue: String, _ attempt: AttemptOutcome) async throws -> FinishReply {
        let r = try await finish([(queue, [attempt][...])])[0]
        guard let reply = try r.get().first ?? nil else {
            throw KilnError(.protocolViolation, "unexpected reply to finish from Redis at \(address)")
        }
        return reply
    }
}
