import KilnRedis

/// A job to write, as the enqueue scripts take it (the caller has validated it).
package struct NewJob: Sendable, Equatable {
    package var id: String
    package var type: String
    package var kind: JobKind
    /// The payload as JSON text.
    package var payload: String
    package var maxAttempts: Int
    package var timeoutMs: Int64
    package var resultTTLms: Int64
    /// The W3C `traceparent` of the span that enqueued it, stored with the job (record position
    /// 21) so the worker's run span continues the trace; empty for none (nothing is stored).
    package var traceparent: String = ""

    package init(id: String, type: String, kind: JobKind, payload: String, maxAttempts: Int, timeoutMs: Int64, resultTTLms: Int64) {
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
package enum EnqueueReply: Sendable, Equatable {
    /// Every job of the call was written and queued.
    case written
    /// Nothing was written: `count` of its ids already exist, the first at `first` (1-based, in the call).
    case exists(first: Int, count: Int)
    /// Redis refused the call with this error reply (not a transient one, which is thrown).
    case refused(String)
}


/// Writing new jobs: `enqueue`, many jobs per call, all or nothing.
extension KilnStore {
    /// Jobs per `enqueue` call: each call is atomic and blocks Redis while it runs.
    package static let enqueueChunk = 500

    /// Registers `queues` (`P:queues`), then runs one atomic `enqueue` call per element of
    /// `calls` (1 to `enqueueChunk` jobs each), all in one pipeline. Every call sends `now` as
    /// `enqueued_at`: a retry of the same calls after a dropped connection sends the same `now`,
    /// and the script recognises its own earlier write (answered `.written`, nothing written
    /// twice). Transient error replies (`LOADING`, `READONLY`) throw, so the caller's retry
    /// covers them; a refused call (a range error) is `.refused` with Redis's error text.
    package func enqueue(_ calls: [(queue: String, jobs: ArraySlice<NewJob>)], registering queues: [String], now: Int64) async throws -> [EnqueueReply] {
        if let bad = calls.first(where: { $0.jobs.isEmpty || $0.jobs.count > Self.enqueueChunk }) {
            throw KilnError(.invalidInput, "an enqueue call to queue '\(SafeText.escaped(bad.queue))' holds \(bad.jobs.count) jobs; split the jobs into calls of 1 to \(Self.enqueueChunk)")
        }
        let nowText = String(now)
        let scriptCalls = calls.lazy.map { c -> ScriptRunner.Call in
            // The 8-per-job form only when a job of the call carries a trace context: without a
            // tracer the call (and every record) is what it was before traceparents existed.
            let traced = c.jobs.contains { !$0.traceparent.isEmpty }
            var args = [keys.queuePrefix(c.queue), nowText]
            args.reserveCapacity(3 + c.jobs.count * 8)
            if traced { args.append(KilnScripts.traceparentMarker) }
            for j in c.jobs {
                args += [j.id, j.type, j.kind.rawValue, j.payload, String(j.maxAttempts), String(j.timeoutMs), String(j.resultTTLms)]
                if traced { args.append(j.traceparent) }
            }
            return ScriptRunner.Call(script: KilnScripts.enqueue, keys: [keys.jobs(c.queue), keys.ready(c.queue, .io), keys.ready(c.queue, .cpu)], args: args)
        }
        // Register queues first: a registered empty queue is harmless, an unregistered job is not findable.
        let before: [[String]] = queues.isEmpty ? [] : [["SADD", keys.queues] + queues]
        let replies = try await runner.runPipelined(calls.count, scriptCalls, before: before)
        try runner.throwIfTransient(replies, command: "enqueue")
        return zip(calls, replies.dropFirst(before.count)).map { call, reply in
            if case .error(let e) = reply { return .refused(e) }
            let r = reply.array.map { $0.int ?? -1 }
            guard r.count == 3, r[0] >= 0, r[0] <= call.jobs.count else { return .refused("unexpected reply to enqueue: \(reply)") }
            // {0, 0, 1}: this very call's write, found again by a retry.
            return r[0] == 0 ? .written : .exists(first: r[0], count: r[1])
        }
    }
}

extension KilnScripts {
    /// The third `enqueue` argument that switches to 8 arguments per job, the 8th a W3C
    /// `traceparent` ('' for none). It cannot be a job id (ids have no colon).
    package static let traceparentMarker = ":traceparent"

    /// KEYS: Q:jobs, Q:ready:io, Q:ready:cpu. ARGV: Q, now, then 7 per job: id, type, kind,
    /// payload, max_attempts, timeout_ms, result_ttl_ms (or `:traceparent` after now, then 8
    /// per job, the 8th the job's traceparent, stored at record position 21 when not empty). Returns {0, 0, 0} (written, ids queued
    /// in ARGV order), {0, 0, 1} (a retry of this call found its own write) or {first, count, 0}
    /// (that many ids exist, the first at that position; nothing written). Out-of-range
    /// arguments: an error reply `ERR kiln enqueue: job N: …`, nothing written.
    package static let enqueue = Script(name: "enqueue", body: """
    -- enqueue
    -- KEYS: Q:jobs, Q:ready:io, Q:ready:cpu
    -- ARGV: Q, now, then 7 per job: id, type, kind, payload, max_attempts, timeout_ms, result_ttl_ms;
    --   or Q, now, ':traceparent', then 8 per job: the same 7 and the job's W3C traceparent ('' for none)
    local now = arg_int(ARGV[2], 0, MAX_COUNT)
    if not now then return redis.error_reply('ERR kiln enqueue: now must be a time in ms') end
    local per, first_arg = 7, 2
    if ARGV[3] == ':traceparent' then per, first_arg = 8, 3 end
    local n = (#ARGV - first_arg) / per
    if n < 1 or n ~= math.floor(n) then return redis.error_reply('ERR kiln enqueue: expected 7 arguments per job after Q and now (8 after :traceparent)') end
    local ids, seen, recs = {}, {}, {}
    local function refuse(j, what) return redis.error_reply('ERR kiln enqueue: job ' .. j .. ': ' .. what) end
    for j = 1, n do
      local b = first_arg + (j - 1) * per
      local id, jtype, kind, payload = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
      if id == '' or #id > 128 then return refuse(j, 'id must be 1-128 characters') end
      if seen[id] then return refuse(j, 'id repeats job ' .. seen[id]) end
      if jtype == '' or #jtype > 200 then return refuse(j, 'type must be 1-200 bytes') end
      if kind ~= 'io' and kind ~= 'cpu' then return refuse(j, 'kind must be io or cpu') end
      local max = arg_int(ARGV[b + 5], 1, 1001)
      if not max then return refuse(j, 'max_attempts must be 1-1001') end
      local timeout = arg_int(ARGV[b + 6], 1, MAX_MS)
      if not timeout then return refuse(j, 'timeout_ms must be 1-' .. MAX_MS) end
      local ttl = arg_int(ARGV[b + 7], 1, MAX_MS)
      if not ttl then return refuse(j, 'result_ttl_ms must be 1-' .. MAX_MS) end
      seen[id] = j
      ids[j] = id
      recs[j] = {3, QUEUED, jtype, kind, payload, 0, max, 0, timeout, ttl, now, 0, 0, 0, '', '', '', '', 0, 0}
      if per == 8 then
        local tp = ARGV[b + 8]
        if #tp > 256 then return refuse(j, 'traceparent must be at most 256 bytes') end
        if tp ~= '' then recs[j][F_TRACEPARENT] = tp end
      end
    end
    local existing = redis.call('HMGET', KEYS[1], unpack(ids))
    local first, count, mine = 0, 0, 0
    for j = 1, n do
      if existing[j] then
        count = count + 1
        if first == 0 then first = j end
        local r = load(existing[j])
        if r and r[F_TYPE] == recs[j][F_TYPE] and r[F_PAYLOAD] == recs[j][F_PAYLOAD] and r[F_ENQUEUED] == now then
          mine = mine + 1
        end
      end
    end
    -- A retry of this very call after a dropped connection finds every job written as it would write it.
    if count == n and mine == n then return {0, 0, 1} end
    if count > 0 then return {first, count, 0} end
    local io_ids, cpu_ids = {}, {}
    for j = 1, n do
      put(ids[j], recs[j])
      if recs[j][F_KIND] == 'io' then io_ids[#io_ids + 1] = ids[j] else cpu_ids[#cpu_ids + 1] = ids[j] end
    end
    redis.call('HSET', KEYS[1], unpack(writes))
    if #io_ids > 0 then redis.call('RPUSH', KEYS[2], unpack(io_ids)) end
    if #cpu_ids > 0 then redis.call('RPUSH', KEYS[3], unpack(cpu_ids)) end
    return {0, 0, 0}
    """)
}
