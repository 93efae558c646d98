import Foundation
import Kiln
import KilnRedis
import Logging
import ServiceLifecycle

/// Puts jobs whose lease expired back on their queue, moves due retries to their queue, trims the
/// dead-letter set, and now and then sweeps for jobs marked running that have no lease.
///
/// After Redis has been unreachable it does not reclaim for one lease: every lease deadline may
/// have passed during the outage while the jobs' workers were alive, and their heartbeats need a
/// chance to land first. (Due retries are still moved meanwhile.)
public struct Reaper: Service {
    let options: WorkerOptions
    let keys: KeySchema
    let scripts: ScriptRunner
    let logger: Logger

    public func run() async throws {
        var outage = OutageTracker(what: "reap expired leases", logger: logger)
        var noReclaimUntil = ContinuousClock.now
        var nextSweep = ContinuousClock.now + options.sweepInterval
        while true {
            var sleep = options.reapInterval
            do {
                let now = JobRunner.nowMs()
                let reclaim = ContinuousClock.now >= noReclaimUntil
                for queue in options.queues {
                    let r = try await scripts.run(
                        KilnScripts.reap,
                        keys: [keys.running(queue), keys.scheduled(queue), keys.pending(queue, .io), keys.pending(queue, .cpu), keys.dead(queue)],
                        args: [keys.queuePrefix(queue), String(now), "500", reclaim ? "1" : "0", String(options.deadMax),
                               String(KilnDuration.milliseconds(options.deadMaxAge))]).array
                    let reclaimed = r.first?.int ?? 0
                    if reclaimed > 0 { logger.warning("reclaimed \(reclaimed) job(s) whose worker stopped renewing its lease", metadata: ["queue": "\(queue)"]) }
                    if r.count > 2, let next = r[2].int, next > 0 {
                        sleep = min(sleep, .milliseconds(max(5, Int64(next) - now)))
                    }
                }
                if ContinuousClock.now >= nextSweep {
                    try await sweep()
                    nextSweep = ContinuousClock.now + options.sweepInterval
                }
                if outage.inOutage { noReclaimUntil = ContinuousClock.now + options.lease }
                outage.succeeded()
            } catch {
                if await !outage.failed(error) { return }
                continue
            }
            let pause = sleep
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            } catch { return }
        }
    }

    /// `text` with SCAN's glob characters escaped (prefixes and queue names may contain them).
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for c in text {
            if "*?[]\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// Finds jobs marked running with no entry in the running set and gives them a lease.
    func sweep() async throws {
        let deadline = String(JobRunner.nowMs() + KilnDuration.milliseconds(options.lease))
        for queue in options.queues {
            var cursor = "0"
            repeat {
                let page = try await scripts.connection.send(["SCAN", cursor, "MATCH", Self.globEscaped(keys.queuePrefix(queue)) + "job:*", "COUNT", "1000"]).array
                cursor = page.first?.string ?? "0"
                let prefix = keys.queuePrefix(queue) + "job:"
                let ids = (page.count > 1 ? page[1].array : []).compactMap { $0.string }.map { String($0.dropFirst(prefix.count)) }
                if !ids.isEmpty {
                    let found = try await scripts.run(KilnScripts.sweep, keys: [keys.running(queue)], args: [keys.queuePrefix(queue), deadline] + ids).int ?? 0
                    if found > 0 { logger.warning("found \(found) job(s) marked running without a lease; they will be reclaimed unless a worker renews them", metadata: ["queue": "\(queue)"]) }
                }
            } while cursor != "0"
        }
    }
}
