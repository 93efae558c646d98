import KilnRedis

/// What one `reap` call did.
package struct ReapReport: Sendable, Equatable {
    /// Expired leases of running jobs taken back (requeued or finalized).
    package var reclaimed: Int
    /// Due retries moved back to their queue.
    package var promoted: Int
    /// When the next retry is due (ms), if any is scheduled.
    package var nextDueMs: Int64?
    /// Dead-lettered jobs deleted by the caps.
    package var deadTrimmed: Int
    /// Finished jobs whose results expired and were deleted (trimmed from the expiry index).
    package var expired: Int = 0
}


/// Housekeeping: `reap` (expired leases, due retries, expired results, dead-letter caps).
extension KilnStore {
    /// Most entries of each kind one `reap` call handles: the expiry step reads up to about
    /// 10 × `limit` ids, which must stay within what Lua can pass to one command.
    package static let reapLimit = 500

    /// One `reap` of `queue` at `now`, handling up to `limit` (at most `reapLimit`) of each kind of
    /// entry: expired leases are reclaimed (with `reclaim`; false after an outage), due retries
    /// promoted, results whose expiry second has passed deleted (through `Q:expiry`), and the
    /// dead-letter set trimmed to `deadMax` entries younger than `deadMaxAge`.
    package func reap(queue: String, now: Int64, limit: Int = 500, reclaim: Bool, deadMax: Int, deadMaxAge: Duration) async throws -> ReapReport {
        let r = try await run(
            KilnScripts.reap,
            keys: [keys.jobs(queue), keys.leases(queue), keys.later(queue), keys.ready(queue, .io), keys.ready(queue, .cpu),
                   keys.dead(queue), keys.expiry(queue), keys.revived(queue)],
            args: [keys.queuePrefix(queue), String(now), String(Swift.max(1, Swift.min(limit, Self.reapLimit))), reclaim ? "1" : "0",
                   String(deadMax), String(KilnDuration.milliseconds(deadMaxAge))])
        let n = r.array.map { $0.int ?? 0 }
        guard n.count == 5 else { throw unexpected(KilnScripts.reap, r) }
        return ReapReport(reclaimed: n[0], promoted: n[1], nextDueMs: n[2] > 0 ? Int64(n[2]) : nil, deadTrimmed: n[3], expired: n[4])
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:leases, Q:later, Q:ready:io, Q:ready:cpu, Q:dead, Q:expiry, Q:revived.
    /// ARGV: Q, now, limit, reclaim (0 = skip), dead_max, dead_max_age_ms. In order: reclaim
    /// expired leases, promote due retries, delete expired results (ids of due `Q:expiry`
    /// members, unread unless listed in `Q:revived`), trim the dead-letter set.
    /// Returns {reclaimed, promoted, next_due_ms or -1, dead_trimmed, expired}.
    package static let reap = Script(name: "reap", body: """
    -- reap
    -- KEYS: Q:jobs, Q:leases, Q:later, Q:ready:io, Q:ready:cpu, Q:dead, Q:expiry, Q:revived
    -- ARGV: Q, now, limit, reclaim, dead_max, dead_max_age_ms
    local q, now, limit = ARGV[1], arg_int(ARGV[2], 0, MAX_COUNT), arg_int(ARGV[3], 1, 500)
    if not now then return refuse('reap', 'now must be a time in ms') end
    if not limit then return refuse('reap', 'limit must be 1-500') end
    local reclaim = ARGV[4] ~= '0'
    local dead_max = tonumber(ARGV[5] or '') or 10000
    local dead_max_age = tonumber(ARGV[6] or '') or 604800000
    local jobs = KEYS[1]
    local reclaimed, promoted, trimmed, expired = 0, 0, 0, 0

    -- 1. Expired leases: the worker is gone (or cut off); the job runs again if it may.
    if reclaim then
      local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
      if #ids > 0 then
        local raws = redis.call('HMGET', jobs, unpack(ids))
        local io_ids, cpu_ids, dead = {}, {}, {}
        for i, id in ipairs(ids) do
          local r = load(raws[i])
          if r == false then
            local b = broken(now, 'record is not a version 3 record'); finalize(id, b, FAILED, now); put(id, b)
          elseif r and r[F_STATUS] == RUNNING then
            reclaimed = reclaimed + 1
            local bad = (not int_in(r[F_ATTEMPTS], 0, MAX_COUNT) and 'attempts') or (not int_in(r[F_MAX], 1, 1001) and 'max_attempts')
              or (not int_in(r[F_TTL], 1, MAX_MS) and 'result_ttl_ms') or nil
            if bad then
              malformed(id, r, now, bad)
            elseif has_flag(r, CANCEL_FLAG) then
              finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled while running')
            elseif r[F_ATTEMPTS] >= r[F_MAX] then
              local msg = 'lease expired: the worker running attempt ' .. r[F_ATTEMPTS] .. ' stopped renewing it'
              if r[F_MAX] > 1 then
                finalize(id, r, DEAD, now, 'worker_lost', msg); dead[#dead + 1] = now; dead[#dead + 1] = id
              else
                finalize(id, r, FAILED, now, 'worker_lost', msg)
              end
            else
              r[F_STATUS] = QUEUED; r[F_WORKER] = ''; r[F_STARTED] = 0
              r[F_ERROR_TYPE] = 'worker_lost'; r[F_ERROR_MESSAGE] = 'lease expired: the worker stopped renewing it'
              if r[F_KIND] == 'cpu' then cpu_ids[#cpu_ids + 1] = id else io_ids[#io_ids + 1] = id end
            end
            put(id, r)
          end
        end
        redis.call('ZREM', KEYS[2], unpack(ids))
        -- Reclaimed jobs run next.
        if #io_ids > 0 then redis.call('LPUSH', KEYS[4], unpack(io_ids)) end
        if #cpu_ids > 0 then redis.call('LPUSH', KEYS[5], unpack(cpu_ids)) end
        if #dead > 0 then redis.call('ZADD', KEYS[6], unpack(dead)) end
      end
    end

    -- 2. Due retries.
    local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
    if #due > 0 then
      local raws = redis.call('HMGET', jobs, unpack(due))
      local io_ids, cpu_ids = {}, {}
      for i, id in ipairs(due) do
        local r = load(raws[i])
        if r == false then
          local b = broken(now, 'record is not a version 3 record'); finalize(id, b, FAILED, now); put(id, b)
        elseif r and r[F_STATUS] == RETRYING then
          r[F_STATUS] = QUEUED; put(id, r); promoted = promoted + 1
          if r[F_KIND] == 'cpu' then cpu_ids[#cpu_ids + 1] = id else io_ids[#io_ids + 1] = id end
        end
      end
      redis.call('ZREM', KEYS[3], unpack(due))
      if #io_ids > 0 then redis.call('RPUSH', KEYS[4], unpack(io_ids)) end
      if #cpu_ids > 0 then redis.call('RPUSH', KEYS[5], unpack(cpu_ids)) end
    end
    local next_due = -1
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if first[2] then next_due = tonumber(first[2]) end

    -- Records changed above are written before any is deleted below.
    commit(jobs, KEYS[7], q)

    -- 3. Expired results, a batch of index members at a time (at most about 10 x limit ids).
    local members = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 64)
    if #members > 0 then
      local ids, taken = {}, {}
      for _, m in ipairs(members) do
        if #ids >= limit * 10 then break end
        taken[#taken + 1] = m
        for id in string.gmatch(m, '%S+') do ids[#ids + 1] = id end
      end
      -- A record changes after it is final only through retry_dead, which lists it in Q:revived;
      -- only those are read before deleting (the others are due by construction).
      local doomed, revived = {}, {}
      local any_revived = redis.call('SCARD', KEYS[8]) > 0
      for i = 1, #ids, 1000 do
        local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
        local flags = any_revived and redis.call('SMISMEMBER', KEYS[8], unpack(chunk)) or {}
        for k, id in ipairs(chunk) do
          if flags[k] == 1 then revived[#revived + 1] = id else doomed[#doomed + 1] = id end
        end
      end
      if #revived > 0 then
        local raws = redis.call('HMGET', jobs, unpack(revived))
        local settled = {}
        for k, id in ipairs(revived) do
          local r = load(raws[k])
          if r and r[F_STATUS] >= SUCCEEDED then
            local ttl = int_in(r[F_TTL], 1, MAX_MS) and r[F_TTL] or DEFAULT_TTL
            -- A finished_at that is not a time (hand-edited) must not stop the reap: it counts as long ago.
            local finished = int_in(r[F_FINISHED], 0, MAX_COUNT) and r[F_FINISHED] or 0
            if math.ceil((finished + ttl) / 1000) * 1000 <= now then
              doomed[#doomed + 1] = id; settled[#settled + 1] = id
            end
          elseif not r then
            settled[#settled + 1] = id
          end
        end
        if #settled > 0 then redis.call('SREM', KEYS[8], unpack(settled)) end
      end
      for i = 1, #doomed, 7000 do redis.call('HDEL', jobs, unpack(doomed, i, math.min(i + 6999, #doomed))) end
      expired = #doomed
      redis.call('ZREM', KEYS[7], unpack(taken))
    end

    -- 4. The dead-letter set: entries whose record expired, then the age and count caps.
    local oldest = redis.call('ZRANGE', KEYS[6], 0, 49)
    if #oldest > 0 then
      local exists = redis.call('HMGET', jobs, unpack(oldest))
      local gone = {}
      for i, id in ipairs(oldest) do if not exists[i] then gone[#gone + 1] = id end end
      if #gone > 0 then redis.call('ZREM', KEYS[6], unpack(gone)) end
    end
    local function drop(ids)
      if #ids == 0 then return end
      redis.call('ZREM', KEYS[6], unpack(ids))
      redis.call('HDEL', jobs, unpack(ids))
      -- Their expiry members remain: a new job reusing one of these ids must not be deleted by
      -- them, so reap reads these ids before deleting (and forgets them once their record is gone).
      redis.call('SADD', KEYS[8], unpack(ids))
      trimmed = trimmed + #ids
    end
    drop(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now - dead_max_age, 'LIMIT', 0, limit))
    local over = redis.call('ZCARD', KEYS[6]) - dead_max
    if over > 0 then drop(redis.call('ZRANGE', KEYS[6], 0, math.min(over, limit) - 1)) end

    return {reclaimed, promoted, next_due, trimmed, expired}
    """)
}
