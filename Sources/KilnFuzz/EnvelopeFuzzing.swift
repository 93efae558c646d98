import Kiln
import KilnRedis
import KilnWorker

/// Fuzzing entry point for the worker's envelope parsing (`KilnStore.fetchedJobs` + `envelopeProblem`),
/// reached through `package` access. Used by the fuzz targets and FuzzRegressionTests (docs/testing.md).
package enum EnvelopeFuzzing {
    /// Splits a flat fetch reply (8 fields per job, as the v3 `fetch` script returns it: id, token,
    /// attempt, type, payload, kind, max_attempts, timeout_ms) into jobs and returns each job's envelope
    /// problem, `nil` for a job that can run.
    package static func check(_ fields: [String]) -> [String?] {
        check(.array(fields.map { .bulk($0) }))
    }

    /// The same, for an arbitrary reply (nulls, integers and nested arrays included).
    package static func check(_ reply: RedisValue) -> [String?] {
        KilnStore.fetchedJobs(reply, queue: "fuzz").map(LeasedJob.init).map { job in
            let problem = job.envelopeProblem
            if problem == nil {
                // A job declared runnable must satisfy what the runner relies on.
                precondition(!job.type.isEmpty && job.badKind == nil && (job.timeoutMs ?? 0) > 0)
            }
            return problem
        }
    }
}
