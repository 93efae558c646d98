import Foundation
import Kiln
import KilnTestSupport
import KilnWorker
import Testing

/// KilnTestSupport's public API, used as a user's tests would use it.
@Suite struct TestSupportTests {
    @Test func runsAJobInAnInProcessWorker() async throws {
        var jobs = JobRegistry()
        jobs.io("greet", payload: String.self) { name, _ in "hello \(name)" }
        let value = try await withTestWorker(redis: TestRedis.shared.server, registry: jobs) { worker in
            let job = try await worker.client.enqueue("greet", payload: "Ada", result: String.self)
            let record = try await worker.waitForJob(job.id)
            #expect(record.status == .succeeded)
            return try await job.value(timeout: .seconds(10))
        }
        #expect(value == "hello Ada")
    }

    @Test func leavingTheScopeLetsARunningJobFinish() async throws {
        var jobs = JobRegistry()
        let (started, signal) = AsyncStream<Void>.makeStream()
        jobs.io("slow", payload: Int.self) { ms, _ in
            signal.yield()
            try await Task.sleep(for: .milliseconds(ms))
            return ms
        }
        let prefix = TestWorker.uniquePrefix()
        let id = try await withTestWorker(redis: TestRedis.shared.server, registry: jobs, prefix: prefix) { worker in
            let job = try await worker.client.enqueue("slow", payload: 300)
            var running = started.makeAsyncIterator()
            _ = await running.next()
            return job.id
        }
        let client = try TestRedis.shared.client(prefix: prefix)
        defer { client.close() }
        let record = try await client.record(id)
        #expect(record.status == .succeeded, "\(record.json)")
    }

    @Test func aFailingJobEndsAndIsReported() async throws {
        var jobs = JobRegistry()
        jobs.io("boom", payload: JSONValue.self) { _, _ -> String in throw JobFailure("boom", retryable: false) }
        try await withTestWorker(redis: TestRedis.shared.server, registry: jobs) { worker in
            let job = try await worker.client.enqueue("boom", json: "{}", options: JobOptions(retries: 0))
            let record = try await worker.waitForJob(job.id, timeout: .seconds(20))
            #expect(record.status == .failed)
            #expect(record.error?.message == "boom")
        }
    }

    @Test func aScopedServerIsRemovedAfterward() async throws {
        let dir = try await LocalRedisServer.with { redis in
            #expect(LocalRedisServer.ping(port: redis.port))
            return redis.dir
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}
