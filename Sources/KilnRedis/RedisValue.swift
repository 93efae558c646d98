/// One reply from Redis, converted out of hiredis' `redisReply` tree.
public enum RedisValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case status(String)
    case error(String)
    case integer(Int)
    case bulk(String)
    case array([RedisValue])

    /// The value as text: bulk and status strings, integers in decimal; `nil` for null, errors and arrays.
    public var string: String? {
        switch self {
        case .bulk(let s), .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The value as an integer, parsing bulk strings; `nil` if it is not a number.
    public var int: Int? {
        switch self {
        case .integer(let i): return i
        case .bulk(let s), .status(let s): return Int(s)
        default: return nil
        }
    }

    /// The elements of an array reply; an empty list for null.
    public var array: [RedisValue] {
        switch self {
        case .array(let a): return a
        default: return []
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .null: return "(nil)"
        case .status(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulk(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
