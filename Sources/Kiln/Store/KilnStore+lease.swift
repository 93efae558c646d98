import KilnRedis

/// Why `extend` tells a worker to stop a job.
public enum LeaseVerdict: String, Sendable, Equatable {
    /// Someone cancelled it (its lease was still renewed).
    case cancel
    /// It is no longer running under this attempt's token: another attempt owns it.
    case lost
}

/// What `release` did with a job handed back.
public enum ReleaseReply: String, Sendable, Equatable {
    /// Back at the front of its queue; the attempt is not counted.
    case released
    /// It had been cancelled meanwhile: finalized `cancelled`.
    case cancelled
    /// Its record went out of range while it ran: finalized `failed` (`malformed_envelope`).
    case failed
    /// The attempt no longer held the lease: nothing changed.
    case stale
}

/// Holding leases: `extend` (the heartbeat) and `release` (handing a job back).
extension KilnStore {
    /// Renews the leases of `jobs` (id, token) of `queue` to the later of `deadline` and Redis's
    /// clock + `lease`. Returns the jobs to stop. Blocking: for the heartbeat's own thread.
    public func extendBlocking(queue: String, jobs: [(id: String, token: String)], deadline: Int64, lease: Duration) throws -> [(id: String, verdict: LeaseVerdict)] {
        var args = [keys.queuePrefix(queue), String(deadline), String(KilnDuration.milliseconds(lease))]
        args.reserveCapacity(3 + jobs.count * 2)
        for j in jobs { args.append(j.id); args.append(j.token) }
        let f = try runBlocking(KilnScripts.extend, keys: [keys.running(queue)], args: args).array.map { $0.string ?? "" }
        var out: [(id: String, verdict: LeaseVerdict)] = []
        var i = 0
        while i + 1 < f.count {
            out.append((f[i], f[i + 1] == "cancel" ? .cancel : .lost))
            i += 2
        }
        return out
    }

    /// Hands a leased job back without counting the attempt, onto the front of its queue's
    /// `kind` list (on shutdown, or to move it to the kind of slot its handler needs).
    public func release(queue: String, id: String, token: String, to kind: JobKind, now: Int64) async throws -> ReleaseReply {
        let reply = try await run(KilnScripts.release, keys: [keys.running(queue), keys.pending(queue, kind)],
                                  args: [keys.queuePrefix(queue), id, token, kind.rawValue, String(now)])
        guard let r = reply.string.flatMap(ReleaseReply.init(rawValue:)) else {
            throw KilnError(.protocolViolation, "unexpected reply to release: \(reply)")
        }
        return r
    }
}

extension KilnScripts {
    /// KEYS: running. ARGV: P, new lease deadline, lease_ms, then id, token pairs.
    /// Extends the lease of every job still running under its token, to the later of the given
    /// deadline and Redis's clock + lease_ms (a renewal that arrives late still renews for a whole
    /// lease, rather than to a moment already past). Returns a flat array of
    /// id, reason pairs for jobs the worker must stop: 'cancel' (cancel requested) or 'lost'
    /// (the lease was lost and the job belongs to someone else now).
    public static let extend = Script(name: "extend", body: """
    local P, deadline = ARGV[1], tonumber(ARGV[2])
    local lease = tonumber(ARGV[3])
    if lease then deadline = math.max(deadline, redis_ms() + lease) end
    deadline = string.format('%d', deadline)
    local out = {}
    for i = 4, #ARGV, 2 do
      local id, token = ARGV[i], ARGV[i + 1]
      local f = redis.call('HMGET', P .. 'job:' .. id, 'token', 'status', 'cancel_requested')
      if f[1] ~= token or f[2] ~= 'running' then
        out[#out + 1] = id
        out[#out + 1] = 'lost'
      else
        redis.call('ZADD', KEYS[1], deadline, id)
        if f[3] == '1' then
          out[#out + 1] = id
          out[#out + 1] = 'cancel'
        end
      end
    end
    return out
    """)

    /// KEYS: running, pending list to put it on. ARGV: P, id, token, kind, now.
    /// Hands a leased job back without counting the attempt: on graceful shutdown, or to move a
    /// job to the kind of slot its handler needs. Returns 'released', 'cancelled' or 'stale'.
    public static let release = Script(name: "release", body: """
    local P, id, token, kind, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
    local jk = P .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'token', 'status', 'cancel_requested', 'attempts', 'max_attempts', 'result_ttl_ms')
    if f[1] ~= token or f[2] ~= 'running' then return 'stale' end
    local problem = bad_numbers(f[4], f[5], nil, f[6])
    redis.call('ZREM', KEYS[1], id)
    if problem then
      finalize(P, id, 'failed', now, 'malformed_envelope', problem, '86400000')
      return 'failed'
    end
    if f[3] == '1' then
      finalize(P, id, 'cancelled', now, 'cancelled', 'cancelled while running', f[6])
      return 'cancelled'
    end
    local attempts = (tonumber(f[4]) or 1) - 1
    redis.call('HSET', jk, 'status', 'queued', 'kind', kind, 'attempts', attempts < 0 and 0 or attempts)
    redis.call('HDEL', jk, 'started_at', 'worker')
    redis.call('RPUSH', KEYS[2], id)
    return 'released'
    """)
}
