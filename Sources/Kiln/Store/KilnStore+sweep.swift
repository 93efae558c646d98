import KilnRedis

/// `sweep`: jobs marked running without a lease entry get one, so the reaper can reclaim them.
extension KilnStore {
    /// One page of the sweep: `HSCAN` over `Q:jobs` from `cursor`, inside the script (no record
    /// crosses the network); each running job without a lease entry gets one until `deadline`.
    /// Returns the next cursor ("0" when the pass is done) and how many it found.
    package func sweep(queue: String, cursor: String, count: Int = 500, deadline: Int64) async throws -> (next: String, found: Int) {
        let r = try await run(KilnScripts.sweep, keys: [keys.jobs(queue), keys.leases(queue)],
                              args: [keys.queuePrefix(queue), String(deadline), cursor, String(count)]).array
        guard r.count == 2, let next = r[0].string, let found = r[1].int else {
            throw KilnError(.protocolViolation, "unexpected sweep reply from Redis at \(address) for queue \(SafeText.escaped(queue))")
        }
        return (next, found)
    }

    /// Sweeps every job of `queue`, page by page. Returns how many running jobs had no lease entry.
    package func sweepAll(queue: String, deadline: Int64) async throws -> Int {
        var cursor = "0"
        var found = 0
        repeat {
            let page = try await sweep(queue: queue, cursor: cursor, deadline: deadline)
            cursor = page.next
            found += page.found
        } while cursor != "0"
        return found
    }
}

extension KilnScripts {
    /// KEYS: Q:jobs, Q:leases. ARGV: Q, deadline, cursor, count. One `HSCAN` page; each running
    /// record without a `Q:leases` entry gets `ZADD leases deadline id`. Returns {next cursor, found}.
    package static let sweep = Script(name: "sweep", body: """
    -- sweep
    -- KEYS: Q:jobs, Q:leases
    -- ARGV: Q, deadline, cursor, count
    -- One page of an HSCAN over Q:jobs, checked here so no record crosses the network: each running
    -- job without a lease entry gets one until `deadline`. Returns {next cursor, found}.
    local deadline, count = arg_int(ARGV[2], 0, MAX_COUNT), arg_int(ARGV[4], 1, 1000)
    if not deadline then return refuse('sweep', 'deadline must be a time in ms') end
    if not count then return refuse('sweep', 'count must be 1-1000') end
    local page = redis.call('HSCAN', KEYS[1], ARGV[3], 'COUNT', count)
    local fields, found = page[2], 0
    for i = 1, #fields, 2 do
      local id, r = fields[i], load(fields[i + 1])
      if r and r[F_STATUS] == RUNNING and not redis.call('ZSCORE', KEYS[2], id) then
        redis.call('ZADD', KEYS[2], deadline, id)
        found = found + 1
      end
    end
    return {page[1], found}
    """)
}
