import Kiln
import KilnRedis

/// A job this worker holds a lease on, as the fetch script handed it out.
struct LeasedJob: Sendable {
    static let fieldsPerJob = 9

    let id: String
    let token: String
    let attempt: Int
    let type: String
    let payload: String
    let kind: JobKind
    let maxAttempts: Int
    let timeoutMs: Int64?
    let queue: String
    /// The kind written in the record, if it was not one Kiln knows (a malformed envelope).
    let badKind: String?

    /// Splits the flat fetch reply into jobs.
    static func parse(_ reply: RedisValue, queue: String) -> [LeasedJob] {
        let f = reply.array.map { $0.string ?? "" }
        var out: [LeasedJob] = []
        var i = 0
        while i + fieldsPerJob <= f.count {
            let kindText = f[i + 5]
            out.append(LeasedJob(
                id: f[i], token: f[i + 1], attempt: Int(f[i + 2]) ?? 1, type: f[i + 3], payload: f[i + 4],
                kind: JobKind(rawValue: kindText) ?? .io, maxAttempts: Int(f[i + 6]) ?? 1,
                timeoutMs: Int64(f[i + 7]), queue: queue,
                badKind: JobKind(rawValue: kindText) == nil ? kindText : nil))
            i += fieldsPerJob
        }
        return out
    }

    /// What is wrong with the envelope, if anything: a job that can never run.
    var envelopeProblem: String? {
        if type.isEmpty { return "malformed envelope: the record has no 'type' field" }
        if let badKind { return "malformed envelope: 'kind' is '\(SafeText.escaped(String(badKind.prefix(20))))', expected io or cpu" }
        guard let t = timeoutMs else { return "malformed envelope: 'timeout_ms' is missing or not a number" }
        // The fetch script checks the range too; this guards the Duration arithmetic.
        if t <= 0 || t > JobLimits.maxDurationMs { return "malformed envelope: 'timeout_ms' must be positive and at most \(JobLimits.maxDurationMs)" }
        if !JSONText.isValid(payload) { return "malformed envelope: 'payload' is not valid JSON" }
        return nil
    }
}
