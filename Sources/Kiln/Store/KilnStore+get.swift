import KilnRedis

/// Reading job records: the `get` script (records are MessagePack inside Redis; `get` hands them
/// out as text, so no client needs MessagePack).
extension KilnStore {
    /// The record of `id` in `queue`, or nil if there is none.
    package func record(queue: String, id: String) async throws -> JobRecord? {
        try await records(queue: queue, ids: [id])[0]
    }

    /// The records of `ids` in `queue`, in order (nil where there is none): 500 ids per `get`
    /// call, all calls in one pipeline.
    package func records(queue: String, ids: [String]) async throws -> [JobRecord?] {
        let replies = try await runBatched(KilnScripts.get, keys: [keys.jobs(queue)], head: [keys.queuePrefix(queue)], items: ids.map { [$0] })
        return zip(ids, replies).map { id, fields in JobRecord(fields: fields, id: id, queue: queue) }
    }

    /// The first of `queues` (in order) that holds a record of `id`, with the record.
    package func find(id: String, in queues: [String]) async throws -> (queue: String, record: JobRecord)? {
        let calls = queues.map { q in ScriptRunner.Call(script: KilnScripts.get, keys: [keys.jobs(q)], args: [keys.queuePrefix(q), id]) }
        // An error reply (LOADING after a restart) is not "no such job": it throws.
        let replies = try await runner.runPipelined(calls)
        for (q, reply) in zip(queues, replies) {
            if let rec = JobRecord(fields: try runner.expectOK(reply, KilnScripts.get).array.first ?? .null, id: id, queue: q) {
                return (q, rec)
            }
        }
        return nil
    }

    /// The status word of each of `ids` in `queue` (nil where there is no record).
    package func statuses(queue: String, ids: [String]) async throws -> [String?] {
        try await records(queue: queue, ids: ids).map { $0?.statusText }
    }

    /// The dead-lettered jobs of `queue`, oldest first, at most `limit` (expired records skipped).
    package func deadJobs(queue: String, limit: Int) async throws -> [JobRecord] {
        let ids = try await connection.send(["ZRANGE", keys.dead(queue), "0", String(max(0, limit - 1))]).array.compactMap(\.string)
        return try await records(queue: queue, ids: ids).compactMap { $0 }
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs. ARGV: Q, then ids. Read-only: for each id a flat array of field, value
    /// pairs named as in the record table of `docs/protocol.md`, all text (`status` as its
    /// name); an empty array for no such job.
    package static let get = Script(name: "get", body: """
    -- get
    -- KEYS: Q:jobs
    -- ARGV: Q, then ids
    local ids = {}
    for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
    if #ids == 0 then return {} end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local out = {}
    for j = 1, #ids do
      local r = load(raws[j])
      local flat = {}
      if r then
        for k, name in ipairs(FIELDS) do
          local v = r[k]
          if k == F_STATUS then v = NAMES[v] end
          flat[#flat + 1] = name; flat[#flat + 1] = tostring(v)
        end
        -- Optional fields, only when the record has them.
        if type(r[F_TRACEPARENT]) == 'string' and r[F_TRACEPARENT] ~= '' then
          flat[#flat + 1] = 'traceparent'; flat[#flat + 1] = r[F_TRACEPARENT]
        end
      elseif r == false then
        flat = {'status', 'failed', 'error_type', 'malformed_envelope', 'error_message', 'record is not a version 3 record'}
      end
      out[j] = flat
    end
    return out
    """)
}

extension KilnStore {
    /// Whether every job in `jobs` (all of `queue`) exists with this type, payload and
    /// `enqueued_at == now`: written by an earlier try of the same enqueue call. (The `enqueue`
    /// script recognises a retry of a whole call itself; this covers a caller that split it.)
    package func jobsMatch(queue: String, _ jobs: [NewJob], enqueuedAt now: Int64) async throws -> Bool {
        let found = try await records(queue: queue, ids: jobs.map(\.id))
        return zip(jobs, found).allSatisfy { j, r in r?.type == j.type && r?.payload == j.payload && r?.enqueuedAt == now }
    }
}
