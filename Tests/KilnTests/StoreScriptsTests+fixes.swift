import Foundation
import Kiln
import KilnRedis
import Testing

/// What testing the v3 scripts against Redis found wrong, fixed in the scripts: a reused id after
/// a dead-letter trim, lost lease entries, and calls refused before their first write.
extension StoreScriptsTests {
    @Test func aReusedIdSurvivesTheExpiryMemberOfItsTrimmedPredecessor() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        var t = try await leased(s, job("z", maxAttempts: 2, ttl: 1000), now: now)
        #expect(try await finish(s, [failed("z", t, at: now, delay: 0)]) == [.left(.retrying)])
        _ = try await s.reap(queue: Self.q, now: now + 1, reclaim: false, deadMax: 10_000, deadMaxAge: .seconds(3600))
        t = try #require(try await fetch(s, now: now + 2).first).token
        #expect(try await finish(s, [failed("z", t, at: now + 2, delay: 0)]) == [.left(.dead)])
        // The dead-letter cap (0) deletes the record; its expiry member stays behind.
        let trim = try await s.reap(queue: Self.q, now: now + 3, reclaim: false, deadMax: 0, deadMaxAge: .seconds(3600))
        #expect(trim.deadTrimmed == 1)
        #expect(try await s.record(queue: Self.q, id: "z") == nil)
        #expect(try await enqueue(s, [job("z")], now: now + 4) == .written)
        // The old member comes due: the new job must not be deleted by it.
        _ = try await s.reap(queue: Self.q, now: now + 5000, reclaim: false, deadMax: 10_000, deadMaxAge: .seconds(3600))
        #expect(try await s.record(queue: Self.q, id: "z")?.status == .queued)
    }

    @Test func extendRestoresAMissingLeaseEntryAndTheSweepPagesInsideRedis() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        let t = try await leased(s, job("l"), now: now)
        _ = try await s.connection.send(["ZREM", s.keys.leases(Self.q), "l"])
        #expect(try s.extendBlocking(queue: Self.q, jobs: [("l", t)], deadline: now + 30_000, lease: .seconds(30)).isEmpty)
        #expect(try await s.connection.send(["ZSCORE", s.keys.leases(Self.q), "l"]).string != nil)
        _ = try await s.connection.send(["ZREM", s.keys.leases(Self.q), "l"])
        // 600 other queued jobs (beyond 512 entries the hash is a hashtable, which HSCAN pages):
        // the sweep takes several pages, and finds the one running job.
        for part in [0..<300, 300..<600] { #expect(try await enqueue(s, part.map { job("q\($0)") }, now: now) == .written) }
        var cursor = "0", found = 0, pages = 0
        repeat {
            let page = try await s.sweep(queue: Self.q, cursor: cursor, count: 50, deadline: now + 40_000)
            cursor = page.next
            found += page.found
            pages += 1
        } while cursor != "0"
        #expect(found == 1 && pages > 1)
        #expect(try await s.connection.send(["ZSCORE", s.keys.leases(Self.q), "l"]).string == String(now + 40_000))
    }

    @Test func scriptsRefuseBadCallsBeforeTheirFirstWrite() async throws {
        let s = makeStore()
        defer { s.connection.close() }
        let now = nowMs()
        #expect(try await enqueue(s, [job("a"), job("b")], now: now) == .written)
        let r = s.connection
        let ready = s.keys.ready(Self.q, .io)
        let prelude = s.keys.queuePrefix(Self.q)
        for (what, script, keys, args) in [
            ("fetch with a bad now", KilnScripts.fetch, [ready, s.keys.jobs(Self.q), s.keys.leases(Self.q), s.keys.expiry(Self.q)],
             [prelude, "soon", "10", "w:1", "30000", "4000"]),
            ("fetch of 100000 jobs", KilnScripts.fetch, [ready, s.keys.jobs(Self.q), s.keys.leases(Self.q), s.keys.expiry(Self.q)],
             [prelude, String(now), "100000", "w:1", "30000", "4000"]),
            ("cancel with a bad now", KilnScripts.cancel, [s.keys.jobs(Self.q), s.keys.later(Self.q), ready, s.keys.ready(Self.q, .cpu), s.keys.expiry(Self.q)],
             [prelude, "x", "kiln:cancel", "a"]),
            ("cancel naming a twice", KilnScripts.cancel, [s.keys.jobs(Self.q), s.keys.later(Self.q), ready, s.keys.ready(Self.q, .cpu), s.keys.expiry(Self.q)],
             [prelude, String(now), "kiln:cancel", "a", "a"]),
        ] {
            let reply = try await r.pipeline([["EVAL", script.source, String(keys.count)] + keys + args])[0]
            guard case .error(let text) = reply else { Issue.record("\(what): not refused (\(reply))"); continue }
            #expect(text.hasPrefix("ERR kiln "), "\(what): \(text)")
            #expect(try await r.send(["LLEN", ready]).int == 2, "\(what) wrote something")
            #expect(try await s.record(queue: Self.q, id: "a")?.status == .queued, "\(what) wrote something")
        }
    }
}
