import KilnRedis

/// A job's record, read from its hash (`docs/protocol.md`). This is the "future": callers read
/// or wait on it. Field names match `docs/protocol.md` and the CLI's `--json` output.
public struct JobRecord: Sendable, Equatable {
    /// Why the last attempt did not succeed.
    public struct ErrorInfo: Sendable, Equatable, Codable {
        /// A stable code: `error` (the handler threw), `timeout`, `cancelled`, `crash`,
        /// `worker_lost`, `unknown_type`, `bad_payload`, `malformed_envelope`, `result_too_large`.
        public var type: String
        /// A sentence for people; from the handler's error or from the worker.
        public var message: String
    }

    /// The job's id.
    public var id: String
    /// The job's type.
    public var type: String
    /// The job's queue.
    public var queue: String
    /// Where the job runs: `io` or `cpu`.
    public var kind: JobKind
    /// The status as stored; `nil` if the stored word is not one Kiln knows (hand-edited record).
    public var status: JobStatus?
    /// The status word as stored, even one Kiln does not know.
    public var statusText: String
    /// The payload as JSON text.
    public var payload: String
    /// The result as JSON text, once succeeded.
    public var result: String?
    /// The last attempt's error, if it did not succeed.
    public var error: ErrorInfo?
    /// Attempts started so far.
    public var attempts: Int
    /// Attempts allowed in all (retries + 1).
    public var maxAttempts: Int
    /// One attempt's timeout, ms.
    public var timeoutMs: Int64
    /// How long the record is kept once final, ms.
    public var resultTTLms: Int64
    /// When it was enqueued, ms since the Unix epoch.
    public var enqueuedAt: Int64?
    /// When its latest attempt started, ms since the Unix epoch.
    public var startedAt: Int64?
    /// When it reached a final status, ms since the Unix epoch.
    public var finishedAt: Int64?
    /// When a job waiting to retry becomes due, ms since the Unix epoch.
    public var retryAt: Int64?
    /// The worker that ran (or runs) its latest attempt.
    public var worker: String?
    /// True once a cancel was asked for while it ran.
    public var cancelRequested: Bool
    /// The W3C `traceparent` stored by the producer's enqueue span (record position 21), if any.
    /// Not part of the CLI's `--json` output.
    public var traceparent: String?

    /// Builds a record from the field/value pairs the protocol v3 `get` script returns for one id
    /// (`docs/protocol.md`, "The record": all text, `status` as its name, absent values `0` or
    /// empty); `nil` if there are none (no such job). The v3 record holds neither id nor queue.
    package init?(fields: RedisValue, id: String, queue: String) {
        guard let f = Self.pairs(fields) else { return nil }
        func text(_ k: String) -> String? { f[k].flatMap { $0.isEmpty ? nil : $0 } }
        func time(_ k: String) -> Int64? { f[k].flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil } }
        self.id = id
        self.queue = queue
        type = f["type"] ?? ""
        kind = JobKind(rawValue: f["kind"] ?? "") ?? .io
        statusText = f["status"] ?? "queued"
        status = JobStatus(rawValue: statusText)
        payload = f["payload"] ?? "null"
        result = text("result")
        error = text("error_type").map { ErrorInfo(type: $0, message: f["error_message"] ?? "") }
        attempts = Int(f["attempts"] ?? "") ?? 0
        maxAttempts = Int(f["max_attempts"] ?? "") ?? 1
        timeoutMs = Int64(f["timeout_ms"] ?? "") ?? 0
        resultTTLms = Int64(f["result_ttl_ms"] ?? "") ?? 0
        enqueuedAt = time("enqueued_at")
        startedAt = time("started_at")
        finishedAt = time("finished_at")
        retryAt = time("retry_at")
        worker = text("worker")
        cancelRequested = (Int(f["flags"] ?? "") ?? 0) % 2 == 1
        traceparent = text("traceparent")
    }

    /// A flat array of field, value pairs as a dictionary; nil if it is empty.
    private static func pairs(_ value: RedisValue) -> [String: String]? {
        let items = value.array
        if items.isEmpty { return nil }
        var f: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            // For display: a value another producer wrote as bytes that are not UTF-8 shows
            // U+FFFD in their place (a worker never runs such a payload: it fails the job).
            if let k = items[i].string { f[k] = items[i + 1].lossyString ?? "" }
            i += 2
        }
        return f
    }

    /// Whether the job has finished for good.
    public var isFinal: Bool { status?.isFinal ?? false }

    /// The record as one line of JSON, with the field names of `docs/protocol.md`.
    public var json: String {
        func num(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        func raw(_ v: String?) -> String {
            guard let v else { return "null" }
            guard JSONText.isValid(v) else { return JSONText.quote(v) }
            // Raw CR and LF can only be whitespace between tokens in valid JSON: make them
            // spaces, so the record stays one line.
            guard v.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { return v }
            return String(String.UnicodeScalarView(v.unicodeScalars.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
        }
        let err = error.map { "{\"type\":\(JSONText.quote($0.type)),\"message\":\(JSONText.quote($0.message))}" } ?? "null"
        var parts: [String] = []
        parts.append("\"id\":\(JSONText.quote(id))")
        parts.append("\"type\":\(JSONText.quote(type))")
        parts.append("\"queue\":\(JSONText.quote(queue))")
        parts.append("\"kind\":\(JSONText.quote(kind.rawValue))")
        parts.append("\"status\":\(JSONText.quote(statusText))")
        parts.append("\"payload\":\(raw(payload))")
        parts.append("\"result\":\(raw(result))")
        parts.append("\"error\":\(err)")
        parts.append("\"attempts\":\(attempts)")
        parts.append("\"max_attempts\":\(maxAttempts)")
        parts.append("\"timeout_ms\":\(timeoutMs)")
        parts.append("\"result_ttl_ms\":\(resultTTLms)")
        parts.append("\"enqueued_at\":\(num(enqueuedAt))")
        parts.append("\"started_at\":\(num(startedAt))")
        parts.append("\"finished_at\":\(num(finishedAt))")
        parts.append("\"retry_at\":\(num(retryAt))")
        parts.append("\"worker\":\(worker.map(JSONText.quote) ?? "null")")
        parts.append("\"cancel_requested\":\(cancelRequested)")
        return "{" + parts.joined(separator: ",") + "}"
    }
}
