import KilnRedis

/// `sweep`: jobs marked running without a lease entry get one, so the reaper can reclaim them.
extension KilnStoreV3 {
    /// Gives a lease until `deadline` to each of `ids` of `queue` that is running without one
    /// (up to 1000 ids per call). Returns how many it found.
    public func sweep(queue: String, ids: [String], deadline: Int64) async throws -> Int {
        var found = 0
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let chunk = ids[start..<min(ids.count, start + 1000)]
            let r = try await run(KilnScriptsV3.sweep, keys: [keys.jobs(queue), keys.leases(queue)],
                                  args: [keys.queuePrefix(queue), String(deadline)] + chunk)
            found += r.int ?? 0
        }
        return found
    }

    /// Sweeps every job of `queue`: an `HSCAN` pass over `Q:jobs`, page by page, each page's ids
    /// through `sweep`. Returns how many running jobs had no lease entry. (Redis 7.0 has no
    /// `HSCAN NOVALUES`: every record crosses the network once per pass.)
    public func sweepAll(queue: String, deadline: Int64) async throws -> Int {
        let jobs = keys.jobs(queue)
        var cursor = "0"
        var found = 0
        repeat {
            let page = try await connection.send(["HSCAN", jobs, cursor, "COUNT", "1000"]).array
            guard page.count == 2, let next = page[0].string else {
                throw KilnError(.protocolViolation, "unexpected HSCAN reply from Redis at \(address) for \(SafeText.escaped(jobs))")
            }
            cursor = next
            let pairs = page[1].array
            let ids = stride(from: 0, to: pairs.count, by: 2).compactMap { pairs[$0].string }
            found += try await sweep(queue: queue, ids: ids, deadline: deadline)
        } while cursor != "0"
        return found
    }
}

extension KilnScriptsV3 {
    /// KEYS: Q:jobs, Q:leases. ARGV: Q, deadline, then ids. Each id whose record is running
    /// without a `Q:leases` entry gets `ZADD leases deadline id`. Returns how many.
    public static let sweep = Script(name: "sweep", body: """
    -- sweep
    -- KEYS: Q:jobs, Q:leases
    -- ARGV: Q, deadline, then ids
    local deadline = tonumber(ARGV[2])
    local ids = {}
    for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
    if #ids == 0 then return 0 end
    local raws = redis.call('HMGET', KEYS[1], unpack(ids))
    local found = 0
    for j, id in ipairs(ids) do
      local r = load(raws[j])
      if r and r[F_STATUS] == RUNNING and not redis.call('ZSCORE', KEYS[2], id) then
        redis.call('ZADD', KEYS[2], deadline, id)
        found = found + 1
      end
    end
    return found
    """)
}
