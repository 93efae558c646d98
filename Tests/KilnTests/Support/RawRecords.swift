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

    /// One field's value: a MessagePack integer or string (any bytes), or nil (which truncates
    /// the array in Lua: a malformed record).
    enum RawValue {
        case int(Int64)
        case str(String)
        case nilValue
    }

    /// Status codes of the record's field 2.
    static let code: [String: Int64] = ["queued": 1, "running": 2, "retrying": 3, "succeeded": 4, "failed": 5,
                                        "timed_out": 6, "cancelled": 7, "dead": 8]

    var fields: [RawValue] {
        [format, status, type, kind, payload, attempts, maxAttempts, token, timeoutMs, resultTTLms, enqueuedAt,
         startedAt, finishedAt, retryAt, worker, result, errorType, errorMessage, flags, retriedAt]
    }

    /// Writes the record of `id` in `queue` (`Q:jobs`), registers the queue, and, with `ready`,
    /// pushes the id onto that ready list; all in one script, so nothing is half-written.
    /// `lease` adds the id to `Q:leases` with that deadline (ms); `dead` to `Q:dead` at that time.
    func put(_ store: KilnStore, queue: String = "default", id: String, ready: JobKind? = nil,
             lease: Int64? = nil, dead: Int64? = nil) async throws {
        let k = store.keys
        // ARGV: id, then per field a tag ("i" int, "s" string, "n" nil) and its text.
        var args = [id]
        for f in fields {
            switch f {
            case .int(let v): args += ["i", String(v)]
            case .str(let s): args += ["s", s]
            case .nilValue: args += ["n", ""]
            }
        }
        var cmds: [[String]] = [["EVAL", Self.packScript, "2", k.jobs(queue), k.queues] + args,
                                ["SADD", k.queues, queue]]
        if let ready { cmds.append(["RPUSH", k.ready(queue, ready), id]) }
        if let lease { cmds.append(["ZADD", k.leases(queue), String(lease), id]) }
        if let dead { cmds.append(["ZADD", k.dead(queue), String(dead), id]) }
        let replies = try await store.connection.pipeline([["MULTI"]] + cmds + [["EXEC"]])
        for r in replies { if case .error(let e) = r { throw TestFailure("writing raw record \(id): \(e)") } }
        if case .array(let results) = replies.last ?? .null {
            for r in results { if case .error(let e) = r { throw TestFailure("writing raw record \(id): \(e)") } }
        }
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
    static func putBytes(_ store: KilnStore, queue: String = "default", id: String, _ bytes: String, ready: JobKind? = nil) async throws {
        var cmds: [[String]] = [["HSET", store.keys.jobs(queue), id, bytes], ["SADD", store.keys.queues, queue]]
        if let ready { cmds.append(["RPUSH", store.keys.ready(queue, ready), id]) }
        for r in try await store.connection.pipeline(cmds) { if case .error(let e) = r { throw TestFailure("writing \(id): \(e)") } }
    }

    /// Changes fields of the existing record of `id` (1-based positions of "The record") in place.
    static func patch(_ store: KilnStore, queue: String = "default", id: String, _ changes: [Int: RawValue]) async throws {
        var args = [id]
        for (pos, v) in changes.sorted(by: { $0.key < $1.key }) {
            switch v {
            case .int(let n): args += [String(pos), "i", String(n)]
            case .str(let s): args += [String(pos), "s", s]
            case .nilValue: args += [String(pos), "n", ""]
            }
        }
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
