import Foundation

/// Reads batch files: one JSON object per line, `{"type", "payload"?, "queue"?, "timeout"?,
/// "retries"?, "result_ttl"?, "kind"?, "id"?}`; `timeout`/`result_ttl` are duration strings or
/// seconds. Every line is checked; errors name the line.
package enum BatchReader {
    package static func read(_ source: String, defaults: JobOptions, limit: Int) throws -> [EnqueueRequest] {
        let data: Data
        if source == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let d = FileManager.default.contents(atPath: source) else {
                throw KilnError(.invalidInput, "cannot read batch file '\(source)'")
            }
            data = d
        }
        var out: [EnqueueRequest] = []
        // Lines are split on the byte 0x0A, not on Characters: "\r\n" is one Character, so a
        // CRLF file would otherwise be one long line. A trailing CR, and a BOM at the start of
        // the file, are dropped; every line must be UTF-8 (never replaced with U+FFFD).
        var bytes = data[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        for (n, raw) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let line = raw.last == 0x0D ? raw.dropLast() : raw
            do {
                let text = try SafeText.utf8(line, what: "the line").trimmingCharacters(in: .whitespaces)
                if text.isEmpty { continue }
                out.append(try parse(text, defaults: defaults, limit: limit))
            } catch let e as KilnError {
                throw KilnError(e.code, "batch line \(n + 1): \(e.message)")
            }
        }
        return out
    }

    package static func parse(_ text: String, defaults: JobOptions, limit: Int) throws -> EnqueueRequest {
        if text.utf8.count > limit + 64 * 1024 {
            throw KilnError(.tooLarge, "line is \(text.utf8.count) bytes, over the payload limit of \(limit) bytes")
        }
        // Valid JSON first (with the parser's reason if not; a lone surrogate is named as such).
        try JSONText.validate(text, what: "the line")
        // The members as raw text: the payload passes through byte for byte.
        guard let members = JSONMembers.split(text) else { throw KilnError(.invalidInput, "not a JSON object") }
        let allowed: Set<String> = ["type", "payload", "queue", "timeout", "retries", "result_ttl", "kind", "id"]
        var raw: [String: String] = [:]
        for m in members {
            guard allowed.contains(m.key) else {
                throw KilnError(.invalidInput, "unknown field '\(SafeText.escaped(String(m.key.prefix(40))))' (expected type, payload, queue, timeout, retries, result_ttl, kind, id)")
            }
            guard raw.updateValue(m.raw, forKey: m.key) == nil else { throw KilnError(.invalidInput, "field '\(m.key)' appears twice") }
        }
        // The small fields are decoded; JSONDecoder tells numbers from booleans (JSONSerialization's NSNumbers do not).
        var obj: [String: JSONValue] = [:]
        for (key, text) in raw where key != "payload" {
            guard let v = try? JSONText.decode(JSONValue.self, from: text) else {
                throw KilnError(.invalidInput, "'\(key)' has a value this field cannot take: \(SafeText.escaped(String(text.prefix(40))))")
            }
            obj[key] = v
        }
        guard case .string(let type)? = obj["type"] else { throw KilnError(.invalidInput, "missing string field 'type'") }
        var options = defaults
        if let q = obj["queue"] {
            guard case .string(let q) = q else { throw KilnError(.invalidInput, "'queue' must be a string") }
            options.queue = q
        }
        if let t = obj["timeout"] { options.timeout = try duration(t, "timeout") }
        if let t = obj["result_ttl"] { options.resultTTL = try duration(t, "result_ttl") }
        if let r = obj["retries"] {
            guard case .number(let n) = r, n == n.rounded(), abs(n) < 1e6 else {
                throw KilnError(.invalidInput, "'retries' must be a whole number from 0 to \(JobLimits.maxRetries)")
            }
            options.retries = Int(n)
        }
        if let k = obj["kind"] {
            guard case .string(let k) = k, let kind = JobKind(rawValue: k) else { throw KilnError(.invalidInput, "'kind' must be \"io\" or \"cpu\"") }
            options.kind = kind
        }
        if let i = obj["id"] {
            guard case .string(let i) = i else { throw KilnError(.invalidInput, "'id' must be a string") }
            options.id = i
        }
        let payload = raw["payload"] ?? "null"
        let request = EnqueueRequest(type: type, payload: payload, options: options)
        // Everything the client checks, checked here too, so the error names the line.
        try request.check(maxPayloadBytes: limit)
        return request
    }

    /// A timeout field: a duration string ("30s") or a number of seconds.
    package static func duration(_ v: JSONValue, _ name: String) throws -> Duration {
        switch v {
        case .string(let s):
            do { return try KilnDuration.parse(s) } catch let e as KilnError { throw KilnError(e.code, "'\(name)': \(e.message)") }
        case .number(let n) where n > 0 && n < 1e9: return .milliseconds(Int64(n * 1000))
        default: throw KilnError(.invalidInput, "'\(name)' must be a duration such as \"30s\" or a number of seconds")
        }
    }
}

