import KilnRedis

/// Why `extend` tells a worker to stop a job.
package enum LeaseVerdict: String, Sendable, Equatable {
    /// Someone cancelled it (its lease was still renewed).
    case cancel
    /// It is no longer running under this attempt's token: another attempt owns it.
    case lost
}

/// What `release` did with a job handed back.
package enum ReleaseReply: String, Sendable, Equatable {
    /// Back at the front of its queue; the attempt is not counted.
    case released
    /// It had been cancelled meanwhile: finalized `cancelled`.
    case cancelled
    /// Its record went out of range while it ran: finalized `failed` (`malformed_envelope`).
    case failed
    /// The attempt no longer held the lease: nothing changed.
    case stale
}


/// Handing leased jobs back: `release`, many jobs per call.
extension KilnStore {
    /// Hands leased jobs of `queue` back without counting their attempts, each onto the front of
    /// the ready list of its `kind` (on shutdown, or to move a job to the kind of slot its handler
    /// needs). Up to 500 jobs per atomic call, all calls in one pipeline. One reply per job (a job
    /// named twice goes in two calls, in order).
    package func release(queue: String, jobs: [(id: String, token: String, kind: JobKind)], now: Int64) async throws -> [ReleaseReply] {
        let replies = try await runBatched(
            KilnScripts.release,
            keys: [keys.jobs(queue), keys.leases(queue), keys.ready(queue, .io), keys.ready(queue, .cpu), keys.expiry(queue)],
            head: [keys.queuePrefix(queue), String(now)], items: jobs.map { [$0.id, $0.token, $0.kind.rawValue] })
        return try replies.map { r in
            guard let word = r.string.flatMap(ReleaseReply.init(rawValue:)) else { throw unexpected(KilnScripts.release, r) }
            return word
        }
    }

    /// `release` of one job (`KilnStore.release`'s shape).
    package func release(queue: String, id: String, token: String, to kind: JobKind, now: Int64) async throws -> ReleaseReply {
        try await release(queue: queue, jobs: [(id, token, kind)], now: now)[0]
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:leases, Q:ready:io, Q:ready:cpu, Q:expiry. ARGV: Q, now, then 3 per job:
    /// id, token, kind. Each job running under its token goes back to `queued` (attempt not
    /// counted, `LPUSH`: it runs next) or, if cancel was requested, ends `cancelled`. Returns per
    /// job `released`, `cancelled`, `failed` (malformed record) or `stale`.
    package static let release = Script(name: "release", body: """
    -- release
    -- KEYS: Q:jobs, Q:leases, Q:ready:io, Q:ready:cpu, Q:expiry
    -- ARGV: Q, now, then 3 per job: id, token, kind
    local q, now = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT)
    if not now then return refuse('release', 'now must be a time in ms') end
    if (#ARGV - 2) % 3 ~= 0 or #ARGV < 5 then return refuse('release', 'expected 3 arguments per job after Q and now') end
    local ids = {}
    for i = 3, #ARGV, 3 do
      ids[#ids + 1] = ARGV[i]
      if not arg_int(ARGV[i + 1], 0, MAX_COUNT) then return refuse('release', 'job ' .. ARGV[i] .. ': token must be a whole number') end
    end
    local twice = repeated(ids)
    if twice then return refuse('release', 'job ' .. twice .. ' is named twice') end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local statuses, unleased, io_ids, cpu_ids = {}, {}, {}, {}
    for j, id in ipairs(ids) do
      local token, kind = tonumber(ARGV[3 + (j - 1) * 3 + 1]), ARGV[3 + (j - 1) * 3 + 2]
      local r = load(raws[j])
      if not r or r[F_STATUS] ~= RUNNING or r[F_TOKEN] ~= token then
        statuses[j] = 'stale'
      else
        unleased[#unleased + 1] = id
        local bad = (not int_in(r[F_ATTEMPTS], 1, MAX_COUNT) and 'attempts') or (not int_in(r[F_TTL], 1, MAX_MS) and 'result_ttl_ms') or nil
        if bad then
          malformed(id, r, now, bad)
        elseif has_flag(r, CANCEL_FLAG) then
          finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled while running')
        else
          if kind ~= 'io' and kind ~= 'cpu' then kind = r[F_KIND] end
          r[F_ATTEMPTS] = r[F_ATTEMPTS] - 1; r[F_STATUS] = QUEUED; r[F_KIND] = kind
          r[F_STARTED] = 0; r[F_WORKER] = ''
          if kind == 'io' then io_ids[#io_ids + 1] = id else cpu_ids[#cpu_ids + 1] = id end
        end
        put(id, r)
        statuses[j] = r[F_STATUS] == QUEUED and 'released' or NAMES[r[F_STATUS]]
      end
    end
    if #unleased > 0 then redis.call('ZREM', KEYS[2], unpack(unleased)) end
    -- Handed back: it runs next.
    if #io_ids > 0 then redis.call('LPUSH', KEYS[3], unpack(io_ids)) end
    if #cpu_ids > 0 then redis.call('LPUSH', KEYS[4], unpack(cpu_ids)) end
    commit(KEYS[1], KEYS[5], q)
    return statuses
    """)
}
