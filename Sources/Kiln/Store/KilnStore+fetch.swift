import KilnRedis

/// A job leased by `fetch`, as the record held it (a worker checks the envelope before running it).
package struct FetchedJob: Sendable, Equatable {
    package var id: String
    /// The fencing token of this attempt.
    package var token: String
    /// This attempt's number (1 for the first).
    package var attempt: Int
    package var type: String
    /// The payload as JSON text (unchecked).
    package var payload: String
    /// The `kind` field as stored (`io`, `cpu`, or anything a hostile producer wrote).
    package var kindText: String
    package var maxAttempts: Int
    /// `timeout_ms`, if it is a number.
    package var timeoutMs: Int64?
    package var queue: String
    /// How long the job waited to be leased, ms: from when it last became ready (enqueued, retry
    /// due, or `kiln retry`) to this lease; nil if the record has no such time.
    package var waitMs: Int64? = nil
    /// The W3C `traceparent` its producer stored (record position 21), unchecked; nil if none.
    package var traceparent: String? = nil
    /// The first field of the reply (named as in the record) whose bytes are not valid UTF-8, if
    /// any: such a job must not run (a worker fails it `malformed_envelope`). `payload` is then
    /// empty, never text with replacement characters; other such fields hold that lossy text.
    package var invalidUTF8Field: String? = nil
}


/// Leasing jobs: `fetch`, and waiting for a ready list to have work.
extension KilnStore {
    /// Most jobs one `fetch` call leases (a larger `max` leases this many).
    package static let fetchChunk = 500

    /// Leases up to `max` jobs of `kind` from `queue` to `worker` (one atomic call, at most
    /// `fetchChunk`). A job's lease runs for `lease`, or for its timeout + `leaseMargin` if that is
    /// shorter, from the later of `now` and Redis's clock. Without `leaseMargin` every lease is
    /// `lease`. Jobs it finds cancelled or malformed are finalized instead (never run).
    package func fetch(queue: String, kind: JobKind, max: Int, worker: String, lease: Duration, leaseMargin: Duration? = nil,
                      now: Int64) async throws -> [FetchedJob] {
        if max < 1 { return [] }
        var args = [keys.queuePrefix(queue), String(now), String(min(max, Self.fetchChunk)), worker, String(KilnDuration.milliseconds(lease))]
        if let leaseMargin { args.append(String(KilnDuration.milliseconds(leaseMargin))) }
        let reply = try await run(KilnScripts.fetch, keys: [keys.ready(queue, kind), keys.jobs(queue), keys.leases(queue), keys.expiry(queue)],
                                  args: args)
        // 10 fields per job: id, token, attempts, type, payload, kind, max_attempts, timeout_ms, wait_ms, traceparent.
        return KilnStore.fetchedJobs(reply, queue: queue, fieldsPerJob: 10)
    }

    /// Blocks on `connection` until `queue` has a job of `kind` ready (at once if it has one), or
    /// `seconds` pass. Takes nothing: it rotates the list onto itself, which leaves it unchanged.
    package func waitForWork(queue: String, kind: JobKind, on connection: RedisBlockingConnection, seconds: Int) async throws {
        try await KilnStore.waitForWork(list: keys.ready(queue, kind), on: connection, seconds: seconds)
    }
}

extension KilnStore {
    /// Splits `fetch`'s flat reply (10 fields per job: id, token, attempt, type, payload, kind,
    /// max_attempts, timeout_ms, wait_ms, traceparent) into jobs of `queue`; with `fieldsPerJob`
    /// 8, the envelope alone (what the fuzz target feeds). `package` for the fuzz target.
    package static func fetchedJobs(_ reply: RedisValue, queue: String, fieldsPerJob: Int = 8) -> [FetchedJob] {
        let values = reply.array
        var f = values.map { $0.string ?? "" }
        var out: [FetchedJob] = []
        out.reserveCapacity(f.count / fieldsPerJob)
        var i = 0
        while i + fieldsPerJob <= f.count {
            // A field another producer wrote as bytes that are not UTF-8 (the Redis layer keeps
            // them as bytes): named, and the payload left empty so it cannot run altered.
            var invalid: String?
            for k in 0..<fieldsPerJob {
                guard case .bytes = values[i + k] else { continue }
                invalid = invalid ?? (k < fetchFieldNames.count ? fetchFieldNames[k] : "field \(k + 1)")
                f[i + k] = k == 4 ? "" : (values[i + k].lossyString ?? "")
            }
            var job = FetchedJob(id: f[i], token: f[i + 1], attempt: Int(f[i + 2]) ?? 1, type: f[i + 3], payload: f[i + 4],
                                 kindText: f[i + 5], maxAttempts: Int(f[i + 6]) ?? 1, timeoutMs: Int64(f[i + 7]), queue: queue)
            job.invalidUTF8Field = invalid
            if fieldsPerJob >= 10 {
                if let wait = Int64(f[i + 8]), wait >= 0 { job.waitMs = wait }
                if !f[i + 9].isEmpty { job.traceparent = f[i + 9] }
            }
            out.append(job)
            i += fieldsPerJob
        }
        return out
    }

    /// The fields of a job in `fetch`'s reply, in order, named as in the record.
    private static let fetchFieldNames = ["id", "token", "attempts", "type", "payload", "kind", "max_attempts", "timeout_ms", "wait_ms", "traceparent"]

    /// Blocks until `list` is not empty or `seconds` pass, leaving it unchanged (`BLMOVE` onto itself).
    static func waitForWork(list key: String, on connection: RedisBlockingConnection, seconds: Int) async throws {
        _ = try await connection.send(["BLMOVE", key, key, "RIGHT", "RIGHT", String(seconds)], blockFor: .seconds(seconds))
    }
}

extension KilnScripts {
    /// KEYS: Q:ready:KIND, Q:jobs, Q:leases, Q:expiry. ARGV: Q, now, count, worker, lease_ms,
    /// lease_margin_ms. Pops up to `count` ids and leases each runnable one. Returns a flat array,
    /// 10 per leased job: id, token, attempts, type, payload, kind, max_attempts, timeout_ms,
    /// wait_ms (lease time minus the latest of enqueued_at, retry_at, retried_at; -1 if none is
    /// set), traceparent ('' if the record has none). Ids
    /// without a record, or whose record is not queued, are dropped, and so is an id popped twice
    /// in one call after its first time; a queued record with the
    /// cancel flag ends `cancelled`, one out of range (or not a v3 record) `failed`.
    package static let fetch = Script(name: "fetch", body: """
    -- fetch
    -- KEYS: Q:ready:KIND, Q:jobs, Q:leases, Q:expiry
    -- ARGV: Q, now, count, worker, lease_ms, lease_margin_ms
    local q, worker = ARGV[1], ARGV[4]
    local now, count, lease_ms = arg_int(ARGV[2], 0, MAX_COUNT), arg_int(ARGV[3], 1, 1000), arg_int(ARGV[5], 1, MAX_MS)
    local margin = nil
    if ARGV[6] and ARGV[6] ~= '' then margin = arg_int(ARGV[6], 0, MAX_MS); if not margin then return refuse('fetch', 'lease_margin_ms must be 0-' .. MAX_MS) end end
    if not now then return refuse('fetch', 'now must be a time in ms') end
    if not count then return refuse('fetch', 'count must be 1-1000') end
    if not lease_ms then return refuse('fetch', 'lease_ms must be 1-' .. MAX_MS) end
    local ids = redis.call('LPOP', KEYS[1], count)
    if not ids then return {} end
    -- A request that waited in a cut-off worker's connection must not lease into Redis's past.
    local t = math.max(now, redis_now())
    local raws = redis.call('HMGET', KEYS[2], unpack(ids))
    local out, leases, seen = {}, {}, {}
    for i, id in ipairs(ids) do
      -- An id pushed twice (by another producer) is read twice from the same HMGET: lease it once.
      local r = nil
      if not seen[id] then r = load(raws[i]) end
      seen[id] = true
      if r == false then
        local b = broken(now, 'record is not a version 3 record')
        finalize(id, b, FAILED, now); put(id, b)
      elseif r and r[F_STATUS] == QUEUED then
        local bad = bad_field(r)
        if bad then
          malformed(id, r, now, bad); put(id, r)
        elseif has_flag(r, CANCEL_FLAG) then
          finalize(id, r, CANCELLED, now, 'cancelled', 'cancelled before it ran'); put(id, r)
        else
          r[F_ATTEMPTS] = r[F_ATTEMPTS] + 1
          r[F_TOKEN] = r[F_TOKEN] + 1
          r[F_STATUS] = RUNNING
          r[F_STARTED] = t
          r[F_WORKER] = worker
          put(id, r)
          local l = lease_ms
          if margin then l = math.min(lease_ms, r[F_TIMEOUT] + margin) end
          leases[#leases + 1] = t + l
          leases[#leases + 1] = id
          -- Queue wait: from when it last became ready (enqueued, retry due, kiln retry) to now.
          local ready = 0
          if type(r[F_ENQUEUED]) == 'number' then ready = r[F_ENQUEUED] end
          if type(r[F_RETRY_AT]) == 'number' and r[F_RETRY_AT] > ready then ready = r[F_RETRY_AT] end
          if type(r[F_RETRIED]) == 'number' and r[F_RETRIED] > ready then ready = r[F_RETRIED] end
          local wait = -1
          if ready > 0 then wait = math.max(0, t - ready) end
          local tp = r[F_TRACEPARENT]
          if type(tp) ~= 'string' then tp = '' end
          local o = #out
          out[o + 1] = id; out[o + 2] = r[F_TOKEN]; out[o + 3] = r[F_ATTEMPTS]; out[o + 4] = r[F_TYPE]
          out[o + 5] = r[F_PAYLOAD]; out[o + 6] = r[F_KIND]; out[o + 7] = r[F_MAX]; out[o + 8] = r[F_TIMEOUT]
          out[o + 9] = wait; out[o + 10] = tp
        end
      end
    end
    if #leases > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
    commit(KEYS[2], KEYS[4], q)
    return out
    """)
}
