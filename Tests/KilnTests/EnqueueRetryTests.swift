import Foundation
import KilnRedis
import Testing

@testable import Kiln

/// How a retried enqueue (its first try's reply lost with the connection) tells its own earlier
/// write from somebody else's job with the same id.
@Suite struct EnqueueRetryTests {
    let redis = TestRedis.shared

    @Test func ownEarlierWriteIsRecognisedAndAnotherJobIsNot() async throws {
        let client = try redis.client(prefix: TestRedis.uniquePrefix())
        defer { client.close() }
        let mine = EnqueueRequest(type: "echo", payload: #"{"n":1}"#, options: JobOptions(id: "order-7"))
        let id = try await client.enqueueBatch([mine])[0]
        let now = try #require(try await client.record(id).enqueuedAt)
        func job(_ r: EnqueueRequest, _ id: String) -> NewJob {
            NewJob(id: id, type: r.type, kind: .io, payload: r.payload, maxAttempts: 4, timeoutMs: 300_000, resultTTLms: 86_400_000)
        }

        // The same call tried again: same type, payload and timestamp.
        #expect(try await client.writtenByEarlierTry([0], of: [mine], jobs: [job(mine, id)], queue: "default", now: now))
        // Another producer's job under the same id: a different payload, or another millisecond.
        let other = EnqueueRequest(type: "echo", payload: #"{"n":2}"#, options: JobOptions(id: "order-7"))
        #expect(try await !client.writtenByEarlierTry([0], of: [other], jobs: [job(other, id)], queue: "default", now: now))
        #expect(try await !client.writtenByEarlierTry([0], of: [mine], jobs: [job(mine, id)], queue: "default", now: now + 1))
        // A call with a fresh id among its ids: that id existing proves the call was applied.
        let fresh = EnqueueRequest(type: "noop")
        #expect(try await client.writtenByEarlierTry([0, 1], of: [other, fresh], jobs: [job(other, id), job(fresh, JobID.make())], queue: "default", now: now))

        // And a first try is still refused as a duplicate.
        await #expect(throws: KilnError.self) { try await client.enqueueBatch([mine]) }
    }
}
