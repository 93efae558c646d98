import KilnRedis

/// A job leased by `fetch`, as the record held it (a worker checks the envelope before running it).
public struct FetchedJob: Sendable, Equatable {
    public var id: String
    /// The fencing token of this attempt.
    public var token: String
    /// This attempt's number (1 for the first).
    public var attempt: Int
    public var type: String
    /// The payload as JSON text (unchecked).
    public var payload: String
    /// The `kind` field as stored (`io`, `cpu`, or anything a hostile producer wrote).
    public var kindText: String
    public var maxAttempts: Int
    /// `timeout_ms`, if it is a number.
    public var timeoutMs: Int64?
    public var queue: String
}

/// Leasing jobs: `fetch`, and waiting for a pending list to have work.
extension KilnStore {
    static let fetchFieldsPerJob = 9

    /// Leases up to `max` jobs of `kind` from `queue` to `worker` (one atomic call). A job's lease
    /// runs for `lease`, or for its timeout + `leaseMargin` if that is shorter, from the later of
    /// `now` and Redis's clock. Without `leaseMargin` every lease is `lease`.
    public func fetch(queue: String, kind: JobKind, max: Int, worker: String, lease: Duration, leaseMargin: Duration? = nil,
                      now: Int64) async throws -> [FetchedJob] {
        var args = [keys.queuePrefix(queue), String(now), String(max), worker, String(KilnDuration.milliseconds(lease))]
        if let leaseMargin { args.append(String(KilnDuration.milliseconds(leaseMargin))) }
        let reply = try await run(KilnScripts.fetch, keys: [keys.pending(queue, kind), keys.running(queue)], args: args)
        return Self.fetchedJobs(reply, queue: queue)
    }

    /// Splits `fetch`'s flat reply (9 fields per job) into jobs. `package` for the fuzz target.
    /// `fieldsPerJob` 8: protocol v3's reply, the same fields without the queue (which this
    /// takes from `queue` either way).
    package static func fetchedJobs(_ reply: RedisValue, queue: String, fieldsPerJob: Int = fetchFieldsPerJob) -> [FetchedJob] {
        let f = reply.array.map { $0.string ?? "" }
        var out: [FetchedJob] = []
        out.reserveCapacity(f.count / fieldsPerJob)
        var i = 0
        while i + fieldsPerJob <= f.count {
            out.append(FetchedJob(id: f[i], token: f[i + 1], attempt: Int(f[i + 2]) ?? 1, type: f[i + 3], payload: f[i + 4],
                                  kindText: f[i + 5], maxAttempts: Int(f[i + 6]) ?? 1, timeoutMs: Int64(f[i + 7]), queue: queue))
            i += fieldsPerJob
        }
        return out
    }

    /// Blocks on `connection` until `queue` has a job of `kind` pending (at once if it has one),
    /// or `seconds` pass. Takes nothing: it rotates the list onto itself (`BLMOVE pending pending
    /// RIGHT RIGHT`), which leaves it unchanged.
    public func waitForWork(queue: String, kind: JobKind, on connection: RedisBlockingConnection, seconds: Int) async throws {
        try await Self.waitForWork(list: keys.pending(queue, kind), on: connection, seconds: seconds)
    }

    /// Blocks until `list` is not empty or `seconds` pass, leaving it unchanged (`BLMOVE` onto itself).
    static func waitForWork(list key: String, on connection: RedisBlockingConnection, seconds: Int) async throws {
        _ = try await connection.send(["BLMOVE", key, key, "RIGHT", "RIGHT", String(seconds)], blockFor: .seconds(seconds))
    }
}

extension KilnScripts {
    /// KEYS: pending list, running zset. ARGV: P, now, count, worker, lease_ms, lease_margin_ms.
    /// Pops up to `count` ids and leases each runnable one to the worker, for `lease_ms` or, if
    /// shorter, the job's timeout plus `lease_margin_ms` (a job ends by its timeout, so a short job
    /// whose worker dies comes back soon; the heartbeat extends long jobs' leases). Returns a flat array of
    /// 9 fields per job: id, token, attempts, type, payload, kind, max_attempts, timeout_ms, queue.
    /// Ids without a record, or whose record is not `queued`, are skipped (never run twice);
    /// a job cancelled while queued is finalized instead.
    public static let fetch = Script(name: "fetch", body: """
    local P, now, count, worker, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
    local margin, now_text = tonumber(ARGV[6]), ARGV[2]
    local lease_from = math.max(now, redis_ms())
    local out, leases = {}, {}
    -- Lease deadlines as text, made once per distinct timeout (number to text is slow in Lua).
    local deadline_text = {}
    local n = 0
    while n < count do
      local want = count - n
      local ids = redis.call('RPOP', KEYS[1], want)
      if not ids then break end
      for _, id in ipairs(ids) do
        local jk = P .. 'job:' .. id
        local f = redis.call('HMGET', jk, 'status', 'cancel_requested', 'type', 'payload', 'kind', 'max_attempts', 'timeout_ms', 'queue', 'attempts', 'token', 'result_ttl_ms')
        local st = f[1]
        if not st and not f[3] and not f[4] and not f[7] and redis.call('EXISTS', jk) == 0 then
          redis.call('HSET', jk, 'id', id, 'result_ttl_ms', 86400000)
          finalize(P, id, 'failed', now_text, 'malformed_envelope', 'the id ' .. id .. ' was on the queue but has no job record', '86400000')
        elseif f[2] == '1' and (st == 'queued' or not st) then
          finalize(P, id, 'cancelled', now_text, 'cancelled', 'cancelled before it ran', f[11])
        elseif (st == 'queued' or not st) and bad_numbers(f[9], f[6], f[7], f[11], f[10]) then
          -- Never leased: it could not be finished without a failing write later.
          finalize(P, id, 'failed', now_text, 'malformed_envelope', bad_numbers(f[9], f[6], f[7], f[11], f[10]), '86400000')
        elseif st == 'queued' or not st then
          local attempts = tostring((tonumber(f[9]) or 0) + 1)
          local token = tostring((tonumber(f[10]) or 0) + 1)
          redis.call('HSET', jk, 'status', 'running', 'started_at', now_text, 'worker', worker, 'attempts', attempts, 'token', token)
          local dl = deadline_text[f[7] or '']
          if not dl then
            local job_lease = lease
            local timeout = tonumber(f[7])
            if margin and timeout and timeout + margin < job_lease then job_lease = timeout + margin end
            dl = string.format('%d', lease_from + job_lease)
            deadline_text[f[7] or ''] = dl
          end
          leases[#leases + 1] = dl
          leases[#leases + 1] = id
          n = n + 1
          out[#out + 1] = id
          out[#out + 1] = token
          out[#out + 1] = attempts
          out[#out + 1] = f[3] or ''
          out[#out + 1] = f[4] or ''
          out[#out + 1] = f[5] or ''
          out[#out + 1] = f[6] or ''
          out[#out + 1] = f[7] or ''
          out[#out + 1] = f[8] or ''
        end
      end
      if #ids < want then break end  -- the list is empty now
    end
    multi('ZADD', KEYS[2], leases)
    return out
    """)
}
