import Foundation
import Kiln

/// A table of demo results.
struct DemoTable {
    var rows: [(String, String, String)] = []

    mutating func add(_ scenario: String, _ outcome: String, _ timing: String) {
        rows.append((scenario, outcome, timing))
    }

    func print() {
        let header = ("scenario", "what happened", "timing")
        let w0 = max(header.0.count, rows.map(\.0.count).max() ?? 0)
        let w1 = max(header.1.count, rows.map(\.1.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        Swift.print(pad(header.0, w0) + " | " + pad(header.1, w1) + " | " + header.2)
        Swift.print(String(repeating: "-", count: w0) + "-+-" + String(repeating: "-", count: w1) + "-+-" + String(repeating: "-", count: 30))
        for r in rows { Swift.print(pad(r.0, w0) + " | " + pad(r.1, w1) + " | " + r.2) }
    }
}

/// The scenarios `kiln demo` runs, each against the demo worker through the library client.
struct DemoScenarios {
    let client: KilnClient
    var table: DemoTable

    static func seconds(_ d: Duration) -> String { String(format: "%.2f s", Double(KilnDuration.milliseconds(d)) / 1000) }
    static func ms(_ d: Duration) -> String {
        let us = Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
        return String(format: "%.2f ms", us / 1000)
    }

    func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
        let start = ContinuousClock.now
        let v = try await body()
        return (v, ContinuousClock.now - start)
    }

    mutating func runAll(drainJobs: Int, processes: Int) async throws -> DemoTable {
        // Warm up: the first job also tells us the worker is up.
        _ = try await client.enqueue("noop").wait(timeout: .seconds(60))
        try await sleeps()
        try await cpu(processes: processes)
        try await timeout()
        try await cancels()
        try await crashAndRetries()
        try await roundTrip()
        try await drain(drainJobs)
        return table
    }

    mutating func sleeps() async throws {
        let (records, wall) = try await timed {
            let ids = try await client.enqueueBatch((0..<100).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":1000}") })
            var out: [JobRecord] = []
            for id in ids { out.append(try await client.wait(id, queue: "default", timeout: .seconds(60))) }
            return out
        }
        let ok = records.filter { $0.status == .succeeded }.count
        table.add("100 × sleep 1s (async I/O)", "\(ok)/100 succeeded", "\(Self.seconds(wall)) wall (one at a time: 100 s)")
    }

    mutating func cpu(processes: Int) async throws {
        // Calibrate a spin of about one second on this machine.
        let probeN = 50_000_000
        let (_, probe) = try await timed { try await client.enqueue("cpu.spin", json: "{\"n\":\(probeN)}").wait(timeout: .seconds(60)) }
        let n = max(1_000_000, Int(Double(probeN) / max(0.001, Double(KilnDuration.milliseconds(probe)) / 1000)))
        let (_, single) = try await timed { try await client.enqueue("cpu.spin", json: "{\"n\":\(n)}").wait(timeout: .seconds(120)) }
        let jobs = max(2, processes * 2)
        let start = ContinuousClock.now
        let ids = try await client.enqueueBatch((0..<jobs).map { _ in EnqueueRequest(type: "cpu.spin", payload: "{\"n\":\(n)}") })
        // Meanwhile, I/O jobs keep flowing: 50 × 10 ms sleeps, measured from enqueue to finish.
        let sleepIDs = try await client.enqueueBatch((0..<50).map { _ in EnqueueRequest(type: "sleep", payload: "{\"ms\":10}") })
        var delays: [Int64] = []
        for id in sleepIDs {
            let r = try await client.wait(id, queue: "default", timeout: .seconds(60))
            if let e = r.enqueuedAt, let f = r.finishedAt { delays.append(f - e - 10) }
        }
        for id in ids { _ = try await client.wait(id, queue: "default", timeout: .seconds(300)) }
        let wall = ContinuousClock.now - start
        let speedup = Double(KilnDuration.milliseconds(single)) * Double(jobs) / Double(max(1, KilnDuration.milliseconds(wall)))
        table.add("\(jobs) × cpu.spin (~\(Self.seconds(single)) each), \(processes) processes", String(format: "speed-up %.2f× over one at a time", speedup), "\(Self.seconds(wall)) wall")
        delays.sort()
        let p99 = delays.isEmpty ? 0 : delays[min(delays.count - 1, Int(Double(delays.count) * 0.99))]
        table.add("50 × sleep 10ms during the CPU jobs", "I/O loop not stalled", "extra delay p50 \(delays.isEmpty ? 0 : delays[delays.count / 2]) ms, p99 \(p99) ms")
    }

    mutating func timeout() async throws {
        let (r, wall) = try await timed {
            try await client.enqueue("sleep", json: "{\"ms\":10000}", options: JobOptions(timeout: .milliseconds(500), retries: 0)).wait(timeout: .seconds(30))
        }
        table.add("sleep 10s with --timeout 500ms", r.statusText + (r.error.map { ": \($0.message)" } ?? ""), "\(Self.seconds(wall)) after enqueue")
        let (c, cwall) = try await timed {
            try await client.enqueue("cpu.spin", json: "{\"n\":100000000000}", options: JobOptions(timeout: .milliseconds(500), retries: 0)).wait(timeout: .seconds(30))
        }
        table.add("endless cpu.spin with --timeout 500ms", c.statusText + " (child killed, replaced)", "\(Self.seconds(cwall)) after enqueue")
    }

    mutating func cancels() async throws {
        for (label, type, payload) in [("cancel a running sleep 60s", "sleep", "{\"ms\":60000}"),
                                       ("cancel a running endless cpu.spin", "cpu.spin", "{\"n\":100000000000}")] {
            let job = try await client.enqueue(type, json: payload)
            while try await job.status() != .running { try await Task.sleep(for: .milliseconds(5)) }
            let (outcome, took) = try await timed { try await job.cancel(wait: .seconds(10)) }
            table.add(label, outcome.statusText, "stopped \(Self.ms(took)) after kiln cancel")
        }
        let queued = try await client.enqueue("noop", options: JobOptions(queue: "demo-idle"))
        let outcome = try await queued.cancel()
        table.add("cancel a queued job", "\(outcome.statusText); never runs", "-")
    }

    mutating func crashAndRetries() async throws {
        let crash = try await client.enqueue("cpu.crash", options: JobOptions(retries: 0)).wait(timeout: .seconds(30))
        let after = try await client.enqueue("sha256", json: "{\"data\":\"abc\"}").wait(timeout: .seconds(30))
        table.add("cpu.crash (child aborts)", "\(crash.statusText): \(crash.error?.message ?? "?")", "next CPU job: \(after.statusText)")
        let (dead, wall) = try await timed {
            try await client.enqueue("fail", json: "{\"message\":\"upstream said no\"}", options: JobOptions(retries: 2)).wait(timeout: .seconds(60))
        }
        table.add("fail with --retries 2 (backoff 200ms ×2ⁿ + jitter)", "\(dead.statusText) after \(dead.attempts) attempts: \(dead.error?.message ?? "")", "\(Self.seconds(wall)) in all")
    }

    mutating func roundTrip() async throws {
        var samples: [Duration] = []
        for i in 0..<300 {
            let (_, d) = try await timed { try await client.enqueue("echo", json: String(i)).value(timeout: .seconds(10)) }
            samples.append(d)
        }
        samples.sort()
        table.add("300 × enqueue echo, await its future", "sequential round trips",
                  "p50 \(Self.ms(samples[samples.count / 2])), p99 \(Self.ms(samples[samples.count * 99 / 100]))")
    }

    mutating func drain(_ n: Int) async throws {
        let start = ContinuousClock.now
        var ids: [String] = []
        for chunk in stride(from: 0, to: n, by: 1000) {
            ids += try await client.enqueueBatch((chunk..<min(n, chunk + 1000)).map { _ in EnqueueRequest(type: "noop") })
        }
        let enqueued = ContinuousClock.now - start
        table.add("\(n) noop, bulk enqueue (pipelined)", "\(Int(Double(n) / max(0.001, Double(KilnDuration.milliseconds(enqueued)) / 1000))) jobs/s", Self.seconds(enqueued))
        // FIFO: the last id is the last to start; wait for it, then read every record's times.
        guard let last = ids.last else { return }
        _ = try await client.wait(last, queue: "default", timeout: .seconds(300))
        var firstStart = Int64.max
        var lastFinish = Int64.min
        var ok = 0
        for rec in try await client.store.records(queue: "default", ids: ids) {
            if rec?.status == .succeeded { ok += 1 }
            if let s = rec?.startedAt { firstStart = min(firstStart, s) }
            if let e = rec?.finishedAt { lastFinish = max(lastFinish, e) }
        }
        let span = max(1, lastFinish - firstStart)
        table.add("drain them, one worker", "\(ok)/\(n) succeeded, \(Int(Double(n) / (Double(span) / 1000))) jobs/s", "first start to last finish \(String(format: "%.2f s", Double(span) / 1000))")
    }
}
