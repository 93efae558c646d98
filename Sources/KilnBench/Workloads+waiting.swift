import Foundation
import Kiln
import KilnRedis

extension Workloads {
    // MARK: W7 waiting for many results, and memory per kept result

    /// One client waits on `w7Jobs` jobs at once through `waitAll`, then on 1,000 more through
    /// as many concurrent `JobHandle.value` calls; all its waits share one subscriber connection.
    /// Connections are counted while nobody runs the jobs, then a worker drains them.
    mutating func w7() async throws {
        try await env.flushAll()
        let prefix = "bench-w7"
        let n = config.w7Jobs
        let client = try client(prefix)
        defer { client.close() }
        let all = try await bulkEnqueue(client, (0..<(n + 1000)).map { _ in EnqueueRequest(type: "noop") })
        let ids = Array(all.prefix(n))
        let handleIDs = Array(all.suffix(1000))
        let before = try await connectedClients()
        let q = queue
        let channel = client.store.doneChannel(queue: q)
        let targets = ids.map { KilnClient.WaitTarget(id: $0, queue: q) }
        let (during, handles, seen, waitSeconds) = try await withThrowingTaskGroup(of: Int.self) { group -> (Int, Int, Int, Double) in
            group.addTask {
                try await client.waitAll(targets, timeout: .seconds(300)).filter {
                    if case .final(let r) = $0 { return r.status == .succeeded } else { return false }
                }.count
            }
            try await until("waitAll subscribed") { try await env.send(["PUBSUB", "NUMSUB", channel]).array.last?.int ?? 0 >= 1 }
            let during = try await connectedClients() - before
            // JobHandle.value, 1,000 at once (the library's futures).
            for id in handleIDs {
                group.addTask { _ = try await JobHandle<JSONValue>(id: id, queue: q, client: client).value(timeout: .seconds(300)); return -1 }
            }
            try await until("1,000 handle waits registered") { client.waitingJobs >= n + handleIDs.count }
            let handles = try await connectedClients() - before
            let start = ContinuousClock.now
            let worker = try env.startWorker(prefix: prefix, concurrency: 100, processes: 0, name: "w7")
            var seen = 0
            do {
                for try await k in group where k >= 0 { seen = k }
            } catch {
                await env.stopWorker(worker)
                throw BenchError("\(error); worker log: \(env.workerLogTail("w7"))")
            }
            let secs = seconds(ContinuousClock.now - start)
            await env.stopWorker(worker)
            return (during, handles, seen, secs)
        }
        if seen != n { throw BenchError("waitAll saw \(seen) of \(n) jobs succeed") }
        report.figures.append(Figure(workload: "W7", name: "one client waiting on \(n) jobs at once (`waitAll`): Redis connections", value: Double(during), unit: "conns", target: .atMost(4)))
        report.figures.append(Figure(workload: "W7", name: "the same client with 1,000 concurrent `JobHandle.value` waits added: Redis connections", value: Double(handles), unit: "conns",
                                     target: .atMost(4), note: "before this change: one blocking connection per waiting handle (999 for 1,000)"))
        report.figures.append(Figure(workload: "W7", name: "worker start to all \(n) results seen by `waitAll`", value: waitSeconds, unit: "s"))
        detail("w7", .obj([("jobs", .int(n)), ("waitall_connections", .int(during)), ("handle_connections_1000", .int(handles)), ("drain_and_see_s", .num(waitSeconds))]))
        try await env.flushAll()
    }

    /// `used_memory` of the bench's Redis, in bytes.
    func usedMemory() async throws -> Int {
        try await infoField("memory", "used_memory")
    }

    func connectedClients() async throws -> Int { try await infoField("clients", "connected_clients") }

    func infoField(_ section: String, _ field: String) async throws -> Int {
        let info = try await env.send(["INFO", section]).string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix(field + ":") }
        guard let v = line.flatMap({ Int($0.dropFirst(field.count + 1)) }) else { throw BenchError("INFO \(section) has no \(field)") }
        return v
    }

    /// Polls `condition` every 20 ms for up to 60 s.
    func until(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !condition() {
            if ContinuousClock.now > deadline { throw BenchError("timed out waiting: \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
