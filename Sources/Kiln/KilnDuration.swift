import Foundation

/// Parses and prints the durations Kiln's flags and options take: `250ms`, `30s`, `5m`, `1h`,
/// or plain seconds (`1.5`).
package enum KilnDuration {
    /// Parses a duration; throws `KilnError(.invalidInput)` naming the bad text.
    package static func parse(_ text: String) throws -> Duration {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(t)
        var scale = 1.0
        for (suffix, s) in units where t.hasSuffix(suffix) {
            number = t.dropLast(suffix.count)
            scale = s
            break
        }
        let shown = SafeText.escaped(String(text.prefix(40)))
        if t.hasPrefix("-") {
            throw KilnError(.invalidInput, "invalid duration '\(shown)': it must not be negative")
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1,
              let value = Double(number), value.isFinite, value >= 0
        else {
            throw KilnError(.invalidInput, "invalid duration '\(shown)': use a number with ms, s, m or h (e.g. 250ms, 30s, 5m, 1h) or plain seconds")
        }
        guard value * scale <= 10 * 365 * 86400 else {
            throw KilnError(.invalidInput, "invalid duration '\(shown)': it must be at most 10 years (87600h)")
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    /// Milliseconds in a duration, rounded down.
    package static func milliseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }

    /// A short human form that `parse` reads back: `250ms`, `30s`, `5m`, `1h`, `1500ms`.
    package static func format(_ d: Duration) -> String {
        let ms = milliseconds(d)
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 && ms > 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
