import Kiln
import KilnRedis
import Logging
import ServiceLifecycle

/// The heartbeat: every third of the lease it renews the lease of every job running here, in one
/// script call per queue. The same call reports jobs that were cancelled (a durable fallback to
/// the cancel channel) and jobs whose lease was lost, which are stopped without writing anything.
public struct LeaseKeeper: Service {
    let options: WorkerOptions
    let keys: KeySchema
    let scripts: ScriptRunner
    let running: RunningJobs
    let logger: Logger

    public func run() async throws {
        let interval = options.lease / 3
        var outage = OutageTracker(what: "renew leases", logger: logger)
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch { return }
            do {
                try await renew()
                outage.succeeded()
            } catch {
                _ = await outage.failed(error)
            }
        }
    }

    func renew() async throws {
        let deadline = String(JobRunner.nowMs() + KilnDuration.milliseconds(options.lease))
        for (queue, jobs) in running.byQueue() {
            var args = [keys.queuePrefix(queue), deadline]
            for j in jobs { args.append(j.id); args.append(j.token) }
            let reply = try await scripts.run(KilnScripts.extend, keys: [keys.running(queue)], args: args)
            let f = reply.array.map { $0.string ?? "" }
            var i = 0
            while i + 1 < f.count {
                running.stop(queue: queue, id: f[i], f[i + 1] == "cancel" ? .cancel : .leaseLost)
                i += 2
            }
        }
    }
}

/// Listens on the cancel channel and stops cancelled jobs that run here, within milliseconds.
public struct CancelListener: Service {
    let options: WorkerOptions
    let keys: KeySchema
    let running: RunningJobs
    let leases: LeaseKeeper
    let logger: Logger

    public func run() async throws {
        let conn = RedisBlockingConnection(configuration: options.redis)
        defer { conn.close() }
        let running = self.running
        let leases = self.leases
        try? await cancelWhenGracefulShutdown {
            try await conn.subscribe([keys.cancelChannel], onReconnect: {
                // Cancels published while we were away are in the records: renewal reads them.
                Task { try? await leases.renew() }
            }) { message in
                // The message is "prefix:{queue}: id" (see the cancel script).
                guard let text = message.array.last?.string,
                      let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close,
                      let id = text.split(separator: " ").last
                else { return }
                let queue = String(text[text.index(after: open)..<close])
                running.stop(queue: queue, id: String(id), .cancel)
            }
        }
    }
}

/// Puts jobs whose lease expired back on their queue and moves due retries to their queue.
public struct Reaper: Service {
    let options: WorkerOptions
    let keys: KeySchema
    let scripts: ScriptRunner
    let logger: Logger

    public func run() async throws {
        var outage = OutageTracker(what: "reap expired leases", logger: logger)
        while true {
            var sleep = options.reapInterval
            do {
                let now = JobRunner.nowMs()
                for queue in options.queues {
                    let r = try await scripts.run(
                        KilnScripts.reap,
                        keys: [keys.running(queue), keys.scheduled(queue), keys.pending(queue, .io), keys.pending(queue, .cpu), keys.dead(queue)],
                        args: [keys.queuePrefix(queue), String(now), "500"]).array
                    let reclaimed = r.first?.int ?? 0
                    if reclaimed > 0 { logger.warning("reclaimed \(reclaimed) job(s) whose worker stopped renewing its lease", metadata: ["queue": "\(queue)"]) }
                    if let next = r.last?.int, next > 0 {
                        sleep = min(sleep, .milliseconds(max(5, Int64(next) - now)))
                    }
                }
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
}
