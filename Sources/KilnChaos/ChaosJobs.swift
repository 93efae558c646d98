import Foundation
import Kiln

#if canImport(Glibc)
import Glibc
#endif

/// The job types the chaos run mixes. Every handler writes to the ledger when it starts and when
/// it ends; results carry the attempt and worker that produced them, so a stale overwrite would
/// show as a result whose attempt is not the record's.
enum ChaosJobs {
    struct Sleep: Codable { var ms: Int }
    struct Spin: Codable { var n: Int }
    struct Made: Codable, Sendable { var attempt: Int; var worker: String; var pid: Int32 }

    static func registry() -> JobRegistry {
        var r = JobRegistry()
        r.io("chaos.sleep", payload: Sleep.self) { p, ctx in
            Ledger.start(ctx.id, ctx.attempt)
            do {
                try await Task.sleep(for: .milliseconds(p.ms))
            } catch {
                Ledger.end(ctx.id, ctx.attempt, "stopped")
                throw error
            }
            Ledger.end(ctx.id, ctx.attempt, "ok")
            return Made(attempt: ctx.attempt, worker: Ledger.worker, pid: getpid())
        }
        r.io("chaos.fail", payload: Sleep.self) { p, ctx -> Made in
            Ledger.start(ctx.id, ctx.attempt)
            try? await Task.sleep(for: .milliseconds(p.ms))
            Ledger.end(ctx.id, ctx.attempt, "error")
            throw JobFailure("chaos.fail always fails")
        }
        r.cpu("chaos.spin", payload: Spin.self) { p, ctx in
            Ledger.start(ctx.id, ctx.attempt)
            var x: UInt64 = 0x9E37_79B9_7F4A_7C15
            for _ in 0..<p.n {
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
            }
            Ledger.end(ctx.id, ctx.attempt, x == 0 ? "zero" : "ok")
            return Made(attempt: ctx.attempt, worker: Ledger.worker, pid: getpid())
        }
        r.cpuRaw("chaos.crash") { _, ctx in
            Ledger.start(ctx.id, ctx.attempt)
            Ledger.end(ctx.id, ctx.attempt, "crash")
            abort()
        }
        return r
    }
}
