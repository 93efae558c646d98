import KilnRedis

/// How one attempt ended, as the worker writes it with `finish`/`finish_many`.
public struct AttemptOutcome: Sendable, Equatable {
    public enum Ending: String, Sendable {
        case succeeded, failed, cancelled
        case timedOut = "timed_out"
    }

    public var id: String
    /// The fencing token the attempt was leased with.
    public var token: String
    public var ending: Ending
    /// The result as JSON text (for `succeeded`), else empty.
    public var result: String
    public var errorType: String
    public var errorMessage: String
    /// Delay before a retry, ms; nil: do not retry.
    public var retryDelayMs: Int64?
    /// When the attempt ended (ms). Every try of one write sends the same value: a retried write
    /// whose first try was applied is recognised by it.
    public var endedAt: Int64

    public init(id: String, token: String, ending: Ending, result: String = "", errorType: String = "", errorMessage: String = "",
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
public enum FinishReply: Sendable, Equatable {
    /// Written (now, or by an earlier try of the same call): the job is left in this status.
    case left(JobStatus)
    /// The attempt no longer holds the lease (a newer attempt owns the job): nothing changed.
    case stale

    init?(_ word: String?) {
        if word == "stale" { self = .stale } else if let s = word.flatMap(JobStatus.init(rawValue:)) { self = .left(s) } else { return nil }
    }

    /// The status word (`stale` for `.stale`).
    public var word: String {
        switch self {
        case .left(let s): return s.rawValue
        case .stale: return "stale"
        }
    }
}

/// Ending attempts: `finish_many` (Kiln's worker, batched) and the single `finish`.
extension KilnStore {
    /// Attempts per `finish_many` call.
    public static let finishChunk = 500

    /// Writes the outcomes of many attempts, one atomic `finish_many` call per element of
    /// `groups` (each of one queue, at most `finishChunk` attempts), all in one pipeline. Per
    /// group: the reply of each attempt in order, or the error reply Redis gave that call (a
    /// transport failure throws). A reply Kiln does not know is `nil`.
    public func finish(_ groups: [(queue: String, attempts: ArraySlice<AttemptOutcome>)]) async throws -> [Result<[FinishReply?], RedisError>] {
        let calls = groups.map { g -> Call in
            var args = [keys.queuePrefix(g.queue)]
            args.reserveCapacity(1 + g.attempts.count * 8)
            for a in g.attempts { args += a.args }
            return Call(script: KilnScripts.finishMany, keys: [keys.running(g.queue), keys.scheduled(g.queue), keys.dead(g.queue)], args: args)
        }
        let replies = try await runPipelined(calls)
        return zip(groups, replies).map { g, reply in
            if case .error(let text) = reply {
                return .failure(RedisError.reply(text, command: "script finish_many", address: address))
            }
            let words = reply.array.map(\.string)
            return .success(g.attempts.indices.map { i in
                let n = i - g.attempts.startIndex
                return n < words.count ? FinishReply(words[n]) : nil
            })
        }
    }

    /// The protocol's single-attempt `finish` (Kiln's worker uses `finish_many`).
    public func finishOne(queue: String, _ attempt: AttemptOutcome) async throws -> FinishReply {
        let reply = try await run(KilnScripts.finish, keys: [keys.running(queue), keys.scheduled(queue), keys.dead(queue)],
                                  args: [keys.queuePrefix(queue)] + attemptArgsV1(attempt))
        guard let r = FinishReply(reply.string) else { throw KilnError(.protocolViolation, "unexpected reply to finish: \(reply)") }
        return r
    }

    /// `finish` takes `now` before the delay (`finish_many` after it).
    private func attemptArgsV1(_ a: AttemptOutcome) -> [String] {
        [a.id, a.token, a.ending.rawValue, a.result, a.errorType, a.errorMessage, String(a.endedAt), String(a.retryDelayMs ?? -1)]
    }
}

extension KilnScripts {
    /// KEYS: running, scheduled, dead. ARGV: P, id, token, outcome (succeeded|failed|timed_out|cancelled),
    /// result_json, error_type, error_message, now, retry_delay_ms (-1: do not retry).
    /// Fenced: does nothing and returns 'stale' unless the job is running under this token.
    /// Returns the status the job is left in.
    public static let finish = Script(name: "finish", body: """
    local status = finish_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], KEYS[2], KEYS[3])
    if status ~= 'stale' then redis.call('ZREM', KEYS[1], ARGV[2]) end
    return status
    """)

    /// `finish` for many attempts of one queue in one call. KEYS: running, scheduled, dead.
    /// ARGV: P, then 8 per attempt: id, token, outcome, result_json, error_type, error_message,
    /// retry_delay_ms, now (when the attempt ended). Returns the status each is left in, in
    /// order ('stale' where the attempt no longer holds the lease). One lease removal (ZREM) for
    /// the whole batch.
    public static let finishMany = Script(name: "finish_many", body: """
    local P = ARGV[1]
    local out, done = {}, {}
    for i = 2, #ARGV, 8 do
      local id = ARGV[i]
      local status = finish_one(P, id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 7], ARGV[i + 6], KEYS[2], KEYS[3])
      if status ~= 'stale' then done[#done + 1] = id end
      out[#out + 1] = status
    end
    multi('ZREM', KEYS[1], done)
    return out
    """)
}
