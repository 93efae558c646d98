/// The checks every script runs on what it reads before its first write (Lua does not roll back,
/// so a script that fails half-way leaves a half-applied transition): a record's numbers, and an
/// enqueue's arguments. The ranges are `JobLimits` and `docs/protocol.md` ("Validated ranges").
extension KilnScripts {
    static let validation = """
    -- Longest timeout_ms and result_ttl_ms (10 years); most max_attempts; most attempts and token.
    local MAX_MS, MAX_ATTEMPTS, MAX_COUNT = \(JobLimits.maxDurationMs), \(JobLimits.maxRetries + 1), 9999999999999
    -- The number in `s` if it is a whole number in canonical form (what Redis's own integer
    -- parsing takes: no '+', no leading zeros, at most 15 digits, exact in Lua) in lo..hi, else nil.
    local function whole(s, lo, hi)
      if type(s) ~= 'string' or #s > 16 or not (s == '0' or string.find(s, '^%-?[1-9]%d*$')) then return nil end
      local n = tonumber(s)
      if n < lo or n > hi then return nil end
      return n
    end
    -- What is wrong with the numbers of a record, or nil. Every script that reads them calls this
    -- before its first write (Lua does not roll back): a missing field takes its default, a field
    -- that is present must be in range. timeout_ms may be nil (the worker checks it is there).
    -- Values already found valid in this call, per field: most jobs of a batch share them, and a
    -- table lookup costs much less than the pattern match (fetch stays within a few % of no check).
    local valid_attempts, valid_max, valid_timeout, valid_ttl, valid_token = {}, {}, {}, {}, {}
    local function check(seen, name, v, lo, hi)
      if not v or seen[v] then return nil end
      if whole(v, lo, hi) then
        seen[v] = true
        return nil
      end
      return "malformed envelope: '" .. name .. "' is '" .. string.sub(v, 1, 30) .. "', expected a whole number from " .. lo .. ' to ' .. string.format('%d', hi)
    end
    local function bad_numbers(attempts, max, timeout, ttl, token)
      return check(valid_attempts, 'attempts', attempts, 0, MAX_COUNT) or check(valid_max, 'max_attempts', max, 1, MAX_ATTEMPTS)
        or check(valid_timeout, 'timeout_ms', timeout, 1, MAX_MS) or check(valid_ttl, 'result_ttl_ms', ttl, 1, MAX_MS)
        or check(valid_token, 'token', token, 0, MAX_COUNT)
    end
    -- What is wrong with an enqueue's arguments, or nil: checked before anything is written.
    local function bad_enqueue(jtype, kind, max, timeout, ttl)
      if type(jtype) ~= 'string' or jtype == '' then return 'type is empty' end
      if kind ~= 'io' and kind ~= 'cpu' then return "kind must be io or cpu" end
      if not timeout then return 'timeout_ms is missing' end
      local problem = bad_numbers(nil, max or '', timeout, ttl or '')
      return problem and string.gsub(problem, '^malformed envelope: ', '')
    end

    """
}
