import KilnRedis

/// Holding leases: `extend` (the heartbeat).
extension KilnStore {
    /// Renews the leases of `jobs` (id, token) of `queue` to the later of `deadline` and Redis's
    /// clock + `lease`. Returns the jobs to stop: `.cancel` (cancel requested; the lease was still
    /// renewed) or `.lost` (no longer running under this token). Blocking: for the heartbeat's
    /// own thread (never call it from a Swift concurrency task).
    package func extendBlocking(queue: String, jobs: [(id: String, token: String)], deadline: Int64, lease: Duration) throws -> [(id: String, verdict: LeaseVerdict)] {
        if jobs.isEmpty { return [] }
        var args = [keys.queuePrefix(queue), String(deadline), String(KilnDuration.milliseconds(lease))]
        args.reserveCapacity(3 + jobs.count * 2)
        for j in jobs { args.append(j.id); args.append(j.token) }
        let f = try runner.runBlocking(KilnScripts.extend, keys: [keys.jobs(queue), keys.leases(queue)], args: args).array.map { $0.string ?? "" }
        return stride(from: 0, to: f.count - 1, by: 2).map { i in (f[i], f[i + 1] == "cancel" ? .cancel : .lost) }
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:leases. ARGV: Q, deadline, lease_ms, then pairs id, token. Each job still
    /// running under its token gets the later of `deadline` and Redis's clock + lease_ms (an
    /// existing lease entry only: `ZADD XX`). Returns flat pairs id, reason for the jobs to stop:
    /// `cancel` (flag set; lease still renewed) or `lost`.
    package static let extend = Script(name: "extend", body: """
    -- extend
    -- KEYS: Q:jobs, Q:leases
    -- ARGV: Q, deadline, lease_ms, then pairs id, token
    local d, lease = arg_int(ARGV[2], 0, MAX_COUNT), arg_int(ARGV[3], 1, MAX_MS)
    if not d then return refuse('extend', 'deadline must be a time in ms') end
    if not lease then return refuse('extend', 'lease_ms must be 1-' .. MAX_MS) end
    local deadline = math.max(d, redis_now() + lease)
    local ids, tokens = {}, {}
    for i = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[i]; tokens[#ids] = tonumber(ARGV[i + 1]) end
    if #ids == 0 then return {} end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local renew, stop = {}, {}
    for i, id in ipairs(ids) do
      local r = load(raws[i])
      if r and r[F_STATUS] == RUNNING and r[F_TOKEN] == tokens[i] then
        renew[#renew + 1] = deadline; renew[#renew + 1] = id
        if has_flag(r, CANCEL_FLAG) then stop[#stop + 1] = id; stop[#stop + 1] = 'cancel' end
      else
        stop[#stop + 1] = id; stop[#stop + 1] = 'lost'
      end
    end
    -- Without XX: a running job whose lease entry went missing gets it back.
    if #renew > 0 then redis.call('ZADD', KEYS[2], unpack(renew)) end
    return stop
    """)
}
