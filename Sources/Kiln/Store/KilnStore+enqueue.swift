import KilnRedis

/// A job to write, as the enqueue scripts take it (the caller has validated it).
public struct NewJob: Sendable, Equatable {
    public var id: String
    public var type: String
    public var kind: JobKind
    /// The payload as JSON text.
    public var payload: String
    public var maxAttempts: Int
    public var timeoutMs: Int64
    public var resultTTLms: Int64

    public init(id: String, type: String, kind: JobKind, payload: String, maxAttempts: Int, timeoutMs: Int64, resultTTLms: Int64) {
        self.id = id
        self.type = type
        self.kind = kind
        self.payload = payload
        self.maxAttempts = maxAttempts
        self.timeoutMs = timeoutMs
        self.resultTTLms = resultTTLms
    }
}

/// What one atomic `enqueue_many` call did.
public enum EnqueueReply: Sendable, Equatable {
    /// Every job of the call was written and queued.
    case written
    /// Nothing was written: `count` of its ids already exist, the first at `first` (1-based, in the call).
    case exists(first: Int, count: Int)
    /// Redis refused the call with this error reply (not a transient one, which is thrown).
    case refused(String)
}

/// Writing new jobs: `enqueue_many` (Kiln's client) and the single `enqueue` of protocol v1.
extension KilnStore {
    /// Jobs per `enqueue_many` call: each call is atomic and blocks Redis while it runs.
    public static let enqueueChunk = 500

    /// Registers `queues` (`P:queues`), then runs one atomic `enqueue_many` call per element of
    /// `calls` (at most `enqueueChunk` jobs each), all in one pipeline. Every call sends `now` as
    /// `enqueued_at`: a retry of the same calls sends the same `now`, which `jobsMatch` relies on.
    /// Transient error replies (`LOADING`, `READONLY`) throw, so the caller's retry covers them.
    public func enqueue(_ calls: [(queue: String, jobs: ArraySlice<NewJob>)], registering queues: [String], now: Int64) async throws -> [EnqueueReply] {
        let now = String(now)
        let scriptCalls = calls.map { c -> Call in
            var args: [String] = [keys.queuePrefix(c.queue), c.queue, now]
            args.reserveCapacity(3 + c.jobs.count * 7)
            for j in c.jobs {
                args += [j.id, j.type, j.kind.rawValue, j.payload, String(j.maxAttempts), String(j.timeoutMs), String(j.resultTTLms)]
            }
            return Call(script: KilnScripts.enqueueMany, keys: [keys.pending(c.queue, .io), keys.pending(c.queue, .cpu)], args: args)
        }
        // Register queues first: a registered empty queue is harmless, an unregistered job is not findable.
        let replies = try await runPipelined(scriptCalls, before: [["SADD", keys.queues] + queues])
        try runner.throwIfTransient(replies, command: "enqueue")
        return zip(calls, replies.dropFirst()).map { call, reply in
            if case .error(let e) = reply { return .refused(e) }
            let r = reply.array.map { $0.int ?? -1 }
            guard r.count == 2, r[0] >= 0, r[0] <= call.jobs.count else { return .refused("unexpected reply to enqueue_many: \(reply)") }
            return r[0] == 0 ? .written : .exists(first: r[0], count: r[1])
        }
    }

    /// Whether a job exists, for each (queue, id).
    public func exist(_ jobs: [(queue: String, id: String)]) async throws -> [Bool] {
        if jobs.isEmpty { return [] }
        return try await connection.pipeline(jobs.map { ["EXISTS", keys.job($0.queue, $0.id)] })
            .checked(command: "EXISTS", address: address).map { $0.int == 1 }
    }

    /// Whether every job in `jobs` (all of `queue`) exists with this type, payload and
    /// `enqueued_at == now`: written by an earlier try of the same enqueue call.
    public func jobsMatch(queue: String, _ jobs: [NewJob], enqueuedAt now: Int64) async throws -> Bool {
        let replies = try await connection.pipeline(jobs.map { ["HMGET", keys.job(queue, $0.id), "type", "payload", "enqueued_at"] })
            .checked(command: "HMGET", address: address)
        for (j, reply) in zip(jobs, replies) {
            let f = reply.array.map(\.string)
            guard f.count == 3, f[0] == j.type, f[1] == j.payload, f[2] == String(now) else { return false }
        }
        return true
    }

    /// The protocol's single-job `enqueue` (version 1; Kiln's client uses `enqueue_many`).
    /// Returns false if a job with this id exists (nothing written).
    public func enqueueOne(queue: String, _ job: NewJob, now: Int64) async throws -> Bool {
        let reply = try await run(KilnScripts.enqueue, keys: [keys.job(queue, job.id), keys.pending(queue, job.kind)],
                                  args: [job.id, job.type, queue, job.kind.rawValue, job.payload, String(job.maxAttempts),
                                         String(job.timeoutMs), String(job.resultTTLms), String(now)])
        return reply.int == 1
    }
}

extension KilnScripts {
    /// KEYS: job hash, pending list of its kind. ARGV: id, type, queue, kind, payload,
    /// max_attempts, timeout_ms, result_ttl_ms, now. Returns 1, or 0 if the id already exists.
    public static let enqueue = Script(name: "enqueue", body: """
    local problem = bad_enqueue(ARGV[2], ARGV[4], ARGV[6], ARGV[7], ARGV[8])
    if problem then return redis.error_reply('ERR kiln enqueue: ' .. problem) end
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'queue', ARGV[3], 'kind', ARGV[4],
      'payload', ARGV[5], 'status', 'queued', 'attempts', 0, 'max_attempts', ARGV[6],
      'timeout_ms', ARGV[7], 'result_ttl_ms', ARGV[8], 'enqueued_at', ARGV[9], 'token', 0)
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 1
    """)

    /// `enqueue` for many jobs of one queue, all or nothing. KEYS: pending:io, pending:cpu.
    /// ARGV: P, queue, now, then 7 per job: id, type, kind, payload, max_attempts, timeout_ms,
    /// result_ttl_ms. Returns {0, 0} once every job is written and queued (in ARGV order), or
    /// {position of the first id that already exists, how many exist} and writes nothing.
    public static let enqueueMany = Script(name: "enqueue_many", body: """
    local P, queue, now = ARGV[1], ARGV[2], ARGV[3]
    local first, existing = 0, 0
    for i = 4, #ARGV, 7 do
      local problem = bad_enqueue(ARGV[i + 1], ARGV[i + 2], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
      if problem then return redis.error_reply('ERR kiln enqueue_many: job ' .. ((i - 4) / 7 + 1) .. ': ' .. problem) end
      if redis.call('EXISTS', P .. 'job:' .. ARGV[i]) == 1 then
        existing = existing + 1
        if first == 0 then first = (i - 4) / 7 + 1 end
      end
    end
    if existing > 0 then return {first, existing} end
    local io, cpu = {}, {}
    for i = 4, #ARGV, 7 do
      local id = ARGV[i]
      redis.call('HSET', P .. 'job:' .. id, 'id', id, 'type', ARGV[i + 1], 'queue', queue, 'kind', ARGV[i + 2],
        'payload', ARGV[i + 3], 'status', 'queued', 'attempts', '0', 'max_attempts', ARGV[i + 4],
        'timeout_ms', ARGV[i + 5], 'result_ttl_ms', ARGV[i + 6], 'enqueued_at', now, 'token', '0')
      if ARGV[i + 2] == 'cpu' then cpu[#cpu + 1] = id else io[#io + 1] = id end
    end
    multi('LPUSH', KEYS[1], io)
    multi('LPUSH', KEYS[2], cpu)
    return {0, 0}
    """)
}
