import Foundation
import Kiln
import KilnRedis
import Testing

/// A worker's request can reach Redis seconds after the worker stamped it: it waited in the
/// connection while the host's link was down (docs/multi-host.md). A lease taken or renewed by
/// such a request must still run for a whole lease from when Redis sees it, or another worker's
/// reaper reclaims the job at once while it runs here, and it runs twice.
extension ClientTests {
    @Test func aLateFetchStillLeasesForAWholeLease() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys, q = "default"
        let job = try await client.enqueue("noop", options: JobOptions(timeout: .seconds(600)))
        let stamped = nowMs() - 10_000  // the worker stamped it 10 s before Redis saw it
        let before = Int(nowMs())
        _ = try await client.store.fetch(queue: q, kind: .io, max: 1, worker: "w", lease: .seconds(2), leaseMargin: .seconds(4), now: Int64(stamped))
        let deadline = try await client.connection.send(["ZSCORE", k.leases(q), job.id]).int ?? 0
        #expect(deadline >= before + 2000, "the lease ended \(before + 2000 - deadline) ms too early")
        // The reaper of another worker, running now, must not take it back.
        _ = try await client.store.reap(queue: q, now: Int64(nowMs()), limit: 100, reclaim: true, deadMax: 10_000, deadMaxAge: .seconds(604_800))
        #expect(try await client.record(job.id, queue: q).status == .running)
    }

    @Test func aLateRenewalStillRenewsForAWholeLease() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let k = client.store.keys, q = "default"
        let job = try await client.enqueue("noop", options: JobOptions(timeout: .seconds(600)))
        let leased = try await lease(client, leaseMs: 2000)
        #expect(leased.map(\.id) == [job.id])
        let before = Int(nowMs())
        // A renewal stamped 10 s ago: its own deadline (stamp + 2 s) is already past.
        let r = try client.store.extendBlocking(queue: q, jobs: [(job.id, leased[0].token)], deadline: Int64(nowMs() - 8000), lease: .seconds(2))
        #expect(r.isEmpty)
        let deadline = try await client.connection.send(["ZSCORE", k.leases(q), job.id]).int ?? 0
        #expect(deadline >= before + 2000, "the renewed lease ended \(before + 2000 - deadline) ms too early")
        // A deadline later than Redis's clock + lease_ms is used as it is.
        let given = Int(nowMs()) + 5000
        _ = try await client.store.run(KilnScripts.extend, keys: [k.jobs(q), k.leases(q)],
                                         args: [k.queuePrefix(q), String(given), "1", job.id, leased[0].token])
        #expect(try await client.connection.send(["ZSCORE", k.leases(q), job.id]).int == given)
    }
}
