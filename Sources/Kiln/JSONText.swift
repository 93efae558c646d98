import Foundation

/// Small helpers for JSON kept as text: payloads and results travel through Kiln as the exact
/// JSON their producer wrote, never decoded and re-encoded on the way.
package enum JSONText {
    /// Whether `text` is one valid JSON value (objects, arrays and bare scalars allowed).
    package static func isValid(_ text: String) -> Bool {
        (try? validate(text)) != nil
    }

    /// Throws `KilnError(.invalidInput)` with the parser's reason if `text` is not one JSON value.
    package static func validate(_ text: String, what: String = "payload") throws {
        // The scan decides by RFC 8259's grammar, numbers as text (so 1e400 is valid JSON here,
        // which Foundation's parser refuses); documents nested deeper than it reads, and every
        // error message, go to Foundation.
        if JSONScanner.isPlainValid(text) { return }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw KilnError(.invalidInput, "\(what) is empty: give a JSON value such as {} or null")
        }
        // A BOM is not JSON (RFC 8259 §8.1), and one kept inside a record would make every
        // `--json` line that embeds it invalid. The CLI drops it from files before this.
        if text.unicodeScalars.first == "\u{FEFF}" {
            throw KilnError(.invalidInput, "\(what) starts with a byte order mark (U+FEFF), which is not JSON: remove it")
        }
        if let (escape, offset) = loneSurrogate(in: text) {
            throw KilnError(.invalidInput, "\(what) is not valid JSON: the escape \(escape) at byte \(offset) is a lone surrogate (\\uD800-\\uDBFF must be followed by \\uDC00-\\uDFFF), which is no character")
        }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
                ?? "not valid JSON"
            throw KilnError(.invalidInput, "\(what) is not valid JSON: \(reason)")
        }
    }

    /// The first `\uXXXX` escape in a JSON string of `text` that is half of a surrogate pair
    /// without its other half, and its byte offset. Foundation reports these as "Unexpected end
    /// of file", which names the wrong problem.
    static func loneSurrogate(in text: String) -> (String, Int)? {
        let b = Array(text.utf8)
        func hex(_ at: Int) -> UInt32? {
            guard at + 6 <= b.count, b[at] == UInt8(ascii: "\\"), b[at + 1] == UInt8(ascii: "u"),
                  let v = UInt32(String(decoding: b[(at + 2)..<(at + 6)], as: UTF8.self), radix: 16) else { return nil }
            return v
        }
        var i = 0
        var inString = false
        while i < b.count {
            let c = b[i]
            if !inString {
                if c == UInt8(ascii: "\"") { inString = true }
                i += 1
                continue
            }
            if c == UInt8(ascii: "\"") { inString = false; i += 1; continue }
            guard c == UInt8(ascii: "\\") else { i += 1; continue }
            guard let v = hex(i) else { i += 2; continue }
            let escape = String(decoding: b[i..<(i + 6)], as: UTF8.self)
            if (0xDC00...0xDFFF).contains(v) { return (escape, i) }
            if (0xD800...0xDBFF).contains(v) {
                guard let low = hex(i + 6), (0xDC00...0xDFFF).contains(low) else { return (escape, i) }
                i += 12
                continue
            }
            i += 6
        }
        return nil
    }

    /// A JSON string literal for `s`.
    package static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Encodes a value to JSON text (fragments allowed, keys sorted for stable output).
    package static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Decodes JSON text.
    package static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
