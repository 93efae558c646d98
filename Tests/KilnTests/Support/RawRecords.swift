import Foundation
import Kiln
import KilnRedis

/// A protocol v3 record as another producer (or a hostile one) would write it: the MessagePack
/// array of docs/protocol.md, "The record", field by field. Tests write it with `put`, which
/// packs it inside Redis (`EVAL` with `cmsgpack.pack`), so no test needs a MessagePack library.
struct RawRecord {
    var format: RawValue = .int(3)
    var status: RawValue = .int(1)
    var type: RawValue = .str("echo")
    var kind: RawValue = .str("io")
    var payload: RawValue = .str("{}")
    var attempts: RawValue = .int(0)
    var maxAttempts: RawValue = .int(1)
    var token: RawValue = .int(0)
    var timeoutMs: RawValue = .int(10_000)
    var resultTTLms: RawValue = .int(86_400_000)
    var enqueuedAt: RawValue = .int(Int64(Date().timeIntervalSince1970 * 1000))
    var startedAt: RawValue = .int(0)
    var finishedAt: RawValue = .int(0)
    var retryAt: RawValue = .int(0)
    var worker: RawValue = .str("")
    var result: RawValue = .str("")
    var errorType: RawValue = .str("")
    var errorMessage: RawValue = .str("")
    var flags: RawValue = .int(0)
    var retriedAt: RawValue = .int(0)

    /// One field's value: a MessagePack integer or string (any bytes), a float (MessagePack
    /// double unless it is a whole number that fits 64 bits: `1.5`, `1e23`), or nil (a hole:
    /// cmsgpack then packs the record as a map of positions, a malformed record).
    enum RawValue {
        case int(Int64)
        case float(Double)
        case str(String)
        case nilValue

        /// The tag and text `packScript` and `patch` read.
        var tagged: [String] {
            switch self {
            case .int(let v): return ["i", String(v)]
            case .float(let v): return ["i", String(v)]
            case .str(let s): return ["s", s]
            case .nilValue: return ["n", ""]
            }
        }
    }

    /// Status codes of the record's field 2.
    static let code: [String: Int64] = ["queued": 1, "running": 2, "retrying": 3, "succeeded": 4, "failed": 5,
                                        "timed_out": 6, "cancelled": 7, "dead": 8]

    /// The status field for a status name (`.status("running")`).
    static func status(_ name: String) -> RawValue { .int(code[name]!) }

    var fields: [RawValue] {
        [format, status, type, kind, payload, attempts, maxAttempts, token, timeoutMs, resultTTLms, enqueuedAt,
         startedAt, finishedAt, retryAt, worker, result, errorType, errorMessage, flags, retriedAt]
    }

    /// Writes the record of `id` in `queue` (`Q:jobs`), registers the queue, and, with `ready`,
    /// pushes the id onto that ready list; all in one MULTI/EXEC, so nothing is half-written.
    /// `lease` adds the id to `Q:leases` with that deadline (ms); `later` to `Q:later`, `dead` to
    /// `Q:dead` at that time.
    func put(_ store: KilnStore, queue: String = "default", id: String, ready: JobKind? = nil,
             lease: Int64? = nil, later: Int64? = nil, dead: Int64? = nil) async throws {
        let k = store.keys
        // ARGV: id, then per field a tag ("i" number, "s" string, "n" nil) and its text.
        let args = [id] + fields.flatMap(\.tagged)
        try await Self.write(store, queue: queue, id: id, ["EVAL", Self.packScript, "2", k.jobs(queue), k.queues] + args,
                             ready: ready, lease: lease, later: later, dead: dead)
    }

    /// The record write `record`, then the version marker, the queue registration and the index entries, in one
    /// MULTI/EXEC; throws if any command failed.
    private static func write(_ store: KilnStore, queue: String, id: String, _ record: [String], ready: JobKind? = nil,
                              lease: Int64? = nil, later: Int64? = nil, dead: Int64? = nil) async throws {
        let k = store.keys
        // As a producer in another language does (docs/protocol.md, "Enqueue from another
        // language"): the version marker on an empty prefix, then the queue registry.
        var cmds: [[String]] = [record, ["SET", k.version, "3", "NX"], ["SADD", k.queues, queue]]
        if let ready { cmds.append(["RPUSH", k.ready(queue, ready), id]) }
        if let lease { cmds.append(["ZADD", k.leases(queue), String(lease), id]) }
        if let later { cmds.append(["ZADD", k.later(queue), String(later), id]) }
        if let dead { cmds.append(["ZADD", k.dead(queue), String(dead), id]) }
        let replies = try await store.connection.pipeline([["MULTI"]] + cmds + [["EXEC"]])
        for r in replies { if case .error(let e) = r { throw TestFailure("writing raw record \(id): \(e)") } }
        if case .array(let results) = replies.last ?? .null {
            for r in results { if case .error(let e) = r { throw TestFailure("writing raw record \(id): \(e)") } }
        }
    }

    /// Writes as the record of `id` whatever the Lua expression `lua` evaluates to inside Redis
    /// (for bytes a Swift string cannot carry: `cmsgpack.pack({format = 3})` for a map,
    /// `string.rep(string.char(0x91), 100000)` for deep nesting, a truncated pack), with the same
    /// queue registration and index entries as `put`.
    static func putPacked(_ store: KilnStore, queue: String = "default", id: String, lua: String, ready: JobKind? = nil,
                          lease: Int64? = nil, later: Int64? = nil, dead: Int64? = nil) async throws {
        let script = "return redis.call('HSET', KEYS[1], ARGV[1], \(lua))"
        try await write(store, queue: queue, id: id, ["EVAL", script, "1", store.keys.jobs(queue), id],
                        ready: ready, lease: lease, later: later, dead: dead)
    }

    /// KEYS: Q:jobs, P:queues. ARGV: id, then a tag and a value per field.
    static let packScript = """
    local t = {}
    for i = 2, #ARGV, 2 do
      local n = i / 2
      if ARGV[i] == 'i' then t[n] = tonumber(ARGV[i + 1]) elseif ARGV[i] == 's' then t[n] = ARGV[i + 1] end
    end
    return redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(t))
    """

    /// Writes `bytes` as the record of `id` (anything at all: not MessagePack, a map, a number).
    static func putBytes(_ store: KilnStore, queue: String = "default", id: String, _ bytes: String, ready: JobKind? = nil,
                         lease: Int64? = nil, later: Int64? = nil, dead: Int64? = nil) async throws {
        try await write(store, queue: queue, id: id, ["HSET", store.keys.jobs(queue), id, bytes],
                        ready: ready, lease: lease, later: later, dead: dead)
    }

    /// Changes fields of the existing record of `id` (1-based positions of "The record") in place.
    static func patch(_ store: KilnStore, queue: String = "default", id: String, _ changes: [Int: RawValue]) async throws {
        var args = [id]
        for (pos, v) in changes.sorted(by: { $0.key < $1.key }) { args += [String(pos)] + v.tagged }
        let script = """
        local raw = redis.call('HGET', KEYS[1], ARGV[1])
        if not raw then return redis.error_reply('no record') end
        local t = cmsgpack.unpack(raw)
        for i = 2, #ARGV, 3 do
          local p = tonumber(ARGV[i])
          if ARGV[i + 1] == 'i' then t[p] = tonumber(ARGV[i + 2]) elseif ARGV[i + 1] == 's' then t[p] = ARGV[i + 2] else t[p] = nil end
        end
        return redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(t))
        """
        let r = try await store.connection.send(["EVAL", script, "1", store.keys.jobs(queue)] + args)
        if case .error(let e) = r { throw TestFailure("patching \(id): \(e)") }
    }

    /// When the result of `id` expires (ms; its score in `Q:expiry`, whose members are the
    /// space-separated ids one call made final), or nil if it is not indexed.
    static func expiresAt(_ store: KilnStore, queue: String = "default", id: String) async throws -> Int64? {
        let all = try await store.connection.send(["ZRANGE", store.keys.expiry(queue), "0", "-1", "WITHSCORES"]).array.compactMap(\.string)
        var i = 0
        while i + 1 < all.count {
            if all[i].split(separator: " ").contains(Substring(id)) { return Int64(Double(all[i + 1]) ?? -1) }
            i += 2
        }
        return nil
    }
}
