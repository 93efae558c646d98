/// The batched scripts Kiln's own client and worker use: one call for many jobs of one queue.
/// Same conventions as the rest of `KilnScripts`.
extension KilnScripts {
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
