import Kiln
import KilnRedis

/// A job this worker holds a lease on, as the fetch script handed it out.
package struct LeasedJob: Sendable {
    let id: String
    let token: String
    let attempt: Int
    package let type: String
    let payload: String
    let kind: JobKind
    let maxAttempts: Int
    package let timeoutMs: Int64?
    let queue: String
    /// The kind written in the record, if it was not one Kiln knows (a malformed envelope).
    package let badKind: String?
    /// How long it waited in the queue before this lease, ms (nil: unknown).
    var waitMs: Int64? = nil
    /// The W3C traceparent its producer stored, unchecked (nil: none).
    var traceparent: String? = nil
    /// The first field `fetch` returned as bytes that are not UTF-8, if any (a malformed envelope).
    let invalidUTF8Field: String?

    /// The job as `fetch` leased it.
    package init(_ f: FetchedJob) {
        let kind = JobKind(rawValue: f.kindText)
        self.init(id: f.id, token: f.token, attempt: f.attempt, type: f.type, payload: f.payload, kind: kind ?? .io,
                  maxAttempts: f.maxAttempts, timeoutMs: f.timeoutMs, queue: f.queue, badKind: kind == nil ? f.kindText : nil,
                  invalidUTF8Field: f.invalidUTF8Field)
        waitMs = f.waitMs
        traceparent = f.traceparent
    }

    init(id: String, token: String, attempt: Int, type: String, payload: String, kind: JobKind, maxAttempts: Int,
         timeoutMs: Int64?, queue: String, badKind: String?, invalidUTF8Field: String? = nil) {
        self.id = id
        self.token = token
        self.attempt = attempt
        self.type = type
        self.payload = payload
        self.kind = kind
        self.maxAttempts = maxAttempts
        self.timeoutMs = timeoutMs
        self.queue = queue
        self.badKind = badKind
        self.invalidUTF8Field = invalidUTF8Field
    }

    /// What is wrong with the envelope, if anything: a job that can never run.
    package var envelopeProblem: String? {
        // First: the text of such a field is not what the producer wrote.
        if let f = invalidUTF8Field { return "malformed envelope: '\(f)' is not valid UTF-8" }
        if type.isEmpty { return "malformed envelope: the record has no 'type' field" }
        if let badKind { return "malformed envelope: 'kind' is '\(SafeText.escaped(String(badKind.prefix(20))))', expected io or cpu" }
        guard let t = timeoutMs else { return "malformed envelope: 'timeout_ms' is missing or not a number" }
        // The fetch script checks the range too; this guards the Duration arithmetic.
        if t <= 0 || t > JobLimits.maxDurationMs { return "malformed envelope: 'timeout_ms' must be positive and at most \(JobLimits.maxDurationMs)" }
        if !JSONText.isValid(payload) { return "malformed envelope: 'payload' is not valid JSON" }
        return nil
    }
}
