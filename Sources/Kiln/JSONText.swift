import Foundation

/// Small helpers for JSON kept as text: payloads and results travel through Kiln as the exact
/// JSON their producer wrote, never decoded and re-encoded on the way.
public enum JSONText {
    /// Whether `text` is one valid JSON value (objects, arrays and bare scalars allowed).
    public static func isValid(_ text: String) -> Bool {
        (try? validate(text)) != nil
    }

    /// Throws `KilnError(.invalidInput)` with the parser's reason if `text` is not one JSON value.
    public static func validate(_ text: String, what: String = "payload") throws {
        // The quick scan accepts only what Foundation's parser accepts too; anything else (and
        // every error message) comes from Foundation.
        if JSONScanner.isPlainValid(text) { return }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw KilnError(.invalidInput, "\(what) is empty: give a JSON value such as {} or null")
        }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
                ?? "not valid JSON"
            throw KilnError(.invalidInput, "\(what) is not valid JSON: \(reason)")
        }
    }

    /// A JSON string literal for `s`.
    public static func quote(_ s: String) -> String {
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
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Decodes JSON text.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
