import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// A worker is a `Service` in the application's `ServiceGroup`; a client ends its threads.
@Suite struct LifecycleTests {
    /// Another service of the application: runs until graceful shutdown and records it.
    final class AppService: Service, Sendable {
        let sawShutdown = Mutex(false)
        func run() async throws {
            try? await gracefulShutdown()
            sawShutdown.withLock { $0 = true }
        }
    }

    /// A job that runs until the test lets it finish.
    struct Hold: IOJob {
        static let name = "lifecycle.hold"
        var tag: String
        func run(context: JobContext) async throws -> String {
            Gate.started.withLock { $0.insert(tag) }
            while !Gate.open.withLock({ $0.contains(tag) }) { try await Task.sleep(for: .milliseconds(5)) }
            return "done \(tag)"
        }
    }

    enum Gate {
        static let started = Mutex(Set<String>())
        static let open = Mutex(Set<String>())
    }

    @Test func gracefulShutdownOfTheAppGroupFinishesRunningJobs() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        let client = try redis.client(prefix: prefix)
        var jobs = JobRegistry()
        jobs.register(Hold.self)
        var options = WorkerOptions(redis: redis.configuration, prefix: prefix, processes: 0)
        options.shutdownGrace = .seconds(30)
        let worker = try Worker(options: options, registry: jobs, logger: Logger(label: "lifecycle"))
        let app = AppService()
        let group = ServiceGroup(services: [worker, app], logger: Logger(label: "app"))
        let tag = UUID().uuidString

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let handle = try await client.enqueue(Hold(tag: tag))
            try await eventually("the job started") { Gate.started.withLock { $0.contains(tag) } }

            // Shutdown runs in reverse order: the app service first, then the worker, which
            // waits for its running job.
            await group.triggerGracefulShutdown()
            try await eventually("the app service saw the graceful shutdown") { app.sawShutdown.withLock { $0 } }
            #expect(try await handle.status() == .running)
            Gate.open.withLock { _ = $0.insert(tag) }
            try await tasks.next()  // group.run() returned, without error

            let rec = try await handle.record()
            #expect(rec.status == .succeeded)
            #expect(try await handle.value(timeout: .seconds(1)) == "done \(tag)")
        }
        // Stopped: a job enqueued now stays queued.
        let later = try await client.enqueue(Hold(tag: "later"))
        #expect(try await later.status() == .queued)
    }

    @Test func aDroppedClientEndsItsThreads() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        // Each connection's thread holds its connection (or core) until the thread returns, so
        // these weak references going nil mean both threads ended.
        weak var commands: AnyObject?
        weak var subscriber: AnyObject?
        weak var client: KilnClient?
        do {
            let kiln = try redis.client(prefix: prefix)
            client = kiln
            // Starts the command thread and the result subscription's thread.
            let h = try await kiln.enqueue("nobody.runs.this", json: "{}", options: JobOptions(timeout: .seconds(1)))
            commands = kiln.connection.threadToken
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    await #expect(throws: KilnError.self) { _ = try await h.wait(timeout: .seconds(1)) }
                }
                try await eventually("the result subscription is open") {
                    subscriber = kiln.resultSubscription
                    return subscriber != nil
                }
                try await group.waitForAll()
            }
            #expect(commands != nil)
            _ = h
        }
        #expect(client == nil)
        try await eventually("the command thread ended") { commands == nil }
        // Well before the subscription's own idle stop (10 s without waiters): the drop ended it.
        try await eventually("the subscription thread ended", timeout: .seconds(5)) { subscriber == nil }
    }

    @Test func aClosedClientFailsWithAClearError() async throws {
        let kiln = try TestRedis.shared.client(prefix: TestRedis.uniquePrefix())
        _ = try await kiln.enqueue("x", json: "{}")
        weak var commands = kiln.connection.threadToken
        #expect(commands != nil)
        kiln.close()
        await #expect(throws: KilnError.self) { _ = try await kiln.enqueue("x", json: "{}") }
        try await eventually("the command thread ended") { commands == nil }
    }
}

