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
        let now = String(try #require(try await client.record(id).enqueuedAt))

        // The same call tried again: same type, payload and timestamp.
        #expect(try await client.writtenByEarlierTry([0], of: [mine], ids: [id], queue: "default", now: now))
        // Another producer's job under the same id: a different payload, or another millisecond.
        let other = EnqueueRequest(type: "echo", payload: #"{"n":2}"#, options: JobOptions(id: "order-7"))
        #expect(try await !client.writtenByEarlierTry([0], of: [other], ids: [id], queue: "default", now: now))
        #expect(try await !client.writtenByEarlierTry([0], of: [mine], ids: [id], queue: "default", now: String(Int64(now)! + 1)))
        // A call with a fresh id among its ids: that id existing proves the call was applied.
        let fresh = EnqueueRequest(type: "noop")
        #expect(try await client.writtenByEarlierTry([0, 1], of: [other, fresh], ids: [id, JobID.make()], queue: "default", now: now))

        // And a first try is still refused as a duplicate.
        await #expect(throws: KilnError.self) { try await client.enqueueBatch([mine]) }
    }
}
