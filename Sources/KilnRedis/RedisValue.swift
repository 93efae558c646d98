/// One reply from Redis, converted out of hiredis' `redisReply` tree.
package enum RedisValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case status(String)
    case error(String)
    case integer(Int)
    /// A bulk string that is valid UTF-8 (nearly every reply).
    case bulk(String)
    /// A bulk string that is not valid UTF-8, as its bytes: another producer may write anything
    /// into a record, and text decoded with replacement characters would be a different value
    /// (a payload run as something else). ``string`` is nil for it; ``lossyString`` is for display.
    case bytes([UInt8])
    case array([RedisValue])

    /// The value as text: bulk and status strings, integers in decimal; `nil` for null, errors,
    /// arrays and bulk strings that are not valid UTF-8 (``bytes(_:)``).
    package var string: String? {
        switch self {
        case .bulk(let s), .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// Like ``string``, but a bulk string that is not valid UTF-8 is decoded with U+FFFD in place
    /// of its invalid bytes: for display only, never for a value that is acted on.
    package var lossyString: String? {
        if case .bytes(let b) = self { return String(decoding: b, as: UTF8.self) }
        return string
    }

    /// The value as an integer, parsing bulk strings; `nil` if it is not a number.
    package var int: Int? {
        switch self {
        case .integer(let i): return i
        case .bulk(let s), .status(let s): return Int(s)
        default: return nil
        }
    }

    /// The elements of an array reply; an empty list for null.
    package var array: [RedisValue] {
        switch self {
        case .array(let a): return a
        default: return []
        }
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    package var description: String {
        switch self {
        case .null: return "(nil)"
        case .status(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulk(let s): return "\"\(s)\""
        case .bytes(let b): return "\"\(String(decoding: b, as: UTF8.self))\" (not UTF-8: \(b.count) bytes)"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
