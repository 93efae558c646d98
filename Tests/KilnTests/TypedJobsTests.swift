import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Jobs as types: `register(T.self)` binds them, `enqueue(T(...))` returns a typed handle.
@Suite struct TypedJobsTests {
    struct Twice: IOJob {
        static let name = "typed.double"
        var n: Int
        struct Out: Codable, Sendable, Equatable { var twice: Int }
        func run(context: JobContext) async throws -> Out { Out(twice: n * 2) }
    }

    struct Refuse: IOJob {
        static let name = "typed.refuse"
        static let defaultOptions = JobOptions(queue: "typed-other", retries: 0)
        var why: String
        func run(context: JobContext) async throws -> NoOutput {
            throw JobFailure(why, type: "refused", retryable: false)
        }
    }

    struct Spin: CPUJob {
        static let name = "typed.spin"
        var rounds: Int
        func run(context: JobContext) throws -> Int { (0..<rounds).reduce(0, +) }
    }

    /// Bound with a closure that needs something the job value does not carry.
    struct Lookup: KilnJob {
        static let name = "typed.lookup"
        static let kind = JobKind.io
        var key: String
        typealias Output = String
    }

    static func registry(table: [String: String]) -> JobRegistry {
        var jobs = JobRegistry()
        jobs.register(Twice.self)
        jobs.register(Refuse.self)
        jobs.register(Spin.self)
        jobs.register(Lookup.self) { job, _ in table[job.key] ?? "?" }
        return jobs
    }

    @Test func registrationDeclaresNameAndKind() throws {
        let jobs = Self.registry(table: [:])
        #expect(jobs.kind(of: "typed.double") == .io)
        #expect(jobs.kind(of: "typed.spin") == .cpu)
        #expect(jobs.kind(of: "typed.lookup") == .io)
        // The CPU handler works on JSON text, as the pool child calls it.
        guard case .cpu(let body)? = jobs.handler(for: "typed.spin") else { Issue.record("typed.spin is not a CPU handler"); return }
        let ctx = JobContext(id: "x", type: "typed.spin", queue: "default", attempt: 1, maxAttempts: 1, timeout: .seconds(1), logger: Logger(label: "t"))
        #expect(try body("{\"rounds\":5}", ctx) == "10")
    }

    @Test func typedEnqueueRunsAndReturnsTheOutputType() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        let client = try redis.client(prefix: prefix)
        var options = WorkerOptions(redis: redis.configuration, prefix: prefix, queues: ["default", "typed-other"], processes: 0)
        options.shutdownGrace = .seconds(5)
        let worker = try Worker(options: options, registry: Self.registry(table: ["a": "alpha"]), logger: Logger(label: "typed"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            let doubled = try await client.enqueue(Twice(n: 21))
            let out: Twice.Out = try await doubled.value(timeout: .seconds(20))
            #expect(out == Twice.Out(twice: 42))

            let looked = try await client.enqueue(Lookup(key: "a"))
            #expect(try await looked.value(timeout: .seconds(20)) == "alpha")

            // The type's default options apply: queue typed-other, no retries.
            let refused = try await client.enqueue(Refuse(why: "not today"))
            #expect(refused.queue == "typed-other")
            await #expect(throws: KilnError.self) { try await refused.value(timeout: .seconds(20)) }
            let rec = try await refused.wait(timeout: .seconds(20))
            #expect(rec.status == .failed)
            #expect(rec.error?.type == "refused")
            #expect(rec.error?.message == "not today")

            // Many at once, in order.
            let many = try await client.enqueue(all: (1...50).map { Twice(n: $0) })
            for (i, h) in many.enumerated() { #expect(try await h.value(timeout: .seconds(20)).twice == (i + 1) * 2) }

            // A CPU job type is enqueued as a CPU job, whatever the options say.
            let spin = try await client.enqueue(Spin(rounds: 3), options: JobOptions(queue: "nobody", kind: .io))
            #expect(try await spin.record().kind == .cpu)
            #expect(try await spin.record().type == "typed.spin")
            #expect(try await spin.record().payload == "{\"rounds\":3}")

            // A handle made later from an id, as another process would.
            let again = client.handle(Twice.self, id: doubled.id)
            #expect(try await again.value(timeout: .seconds(5)) == Twice.Out(twice: 42))
            group.cancelAll()
        }
    }

    /// The string-typed API and the CLI reach the same handler as the typed API.
    @Test func aTypedHandlerServesStringTypedProducers() async throws {
        let redis = TestRedis.shared
        let prefix = TestRedis.uniquePrefix()
        let client = try redis.client(prefix: prefix)
        let worker = try Worker(options: WorkerOptions(redis: redis.configuration, prefix: prefix, processes: 0),
                                registry: Self.registry(table: [:]), logger: Logger(label: "typed"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            let h = try await client.enqueue("typed.double", json: "{\"n\":4}")
            #expect(try await h.value(timeout: .seconds(20)) == .object(["twice": .number(8)]))
            let bad = try await client.enqueue("typed.double", json: "{\"m\":4}")
            let rec = try await bad.wait(timeout: .seconds(20))
            #expect(rec.status == .dead)  // not retryable: dead-lettered at once
            #expect(rec.error?.type == "bad_payload")
            #expect(rec.error?.message.contains("missing field 'n'") == true)
            group.cancelAll()
        }
    }
}
