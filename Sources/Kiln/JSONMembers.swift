/// The top-level members of a JSON object, each value as its exact text: a batch line's `payload`
/// then goes to Redis byte for byte, with no decoding and re-encoding that would round big
/// integers through `Double` (`9007199254740993` → `…992`) or refuse numbers `Double` cannot hold
/// (`1e400`, `1.5e-400`). The caller has validated the text as JSON first; this only finds the
/// boundaries (strings with escapes, nested objects and arrays, scalars).
enum JSONMembers {
    /// The members in order, keys decoded (escapes resolved) and values as raw text; `nil` if
    /// `text` is not an object.
    static func split(_ text: String) -> [(key: String, raw: String)]? {
        let b = Array(text.utf8)
        var i = 0
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        func skipSpace() { while i < b.count, isSpace(b[i]) { i += 1 } }
        // At an opening quote; leaves `i` after the closing one.
        func skipString() -> Bool {
            i += 1
            while i < b.count {
                if b[i] == 0x5C { i += 2; continue }
                if b[i] == 0x22 { i += 1; return true }
                i += 1
            }
            return false
        }
        func skipValue() -> Bool {
            guard i < b.count else { return false }
            switch b[i] {
            case 0x22:
                return skipString()
            case 0x7B, 0x5B:
                var depth = 0
                while i < b.count {
                    switch b[i] {
                    case 0x22:
                        if !skipString() { return false }
                        continue
                    case 0x7B, 0x5B:
                        depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default:
                        break
                    }
                    i += 1
                }
                return false
            default:
                let start = i
                while i < b.count, !isSpace(b[i]), b[i] != 0x2C, b[i] != 0x7D, b[i] != 0x5D { i += 1 }
                return i > start
            }
        }
        skipSpace()
        guard i < b.count, b[i] == 0x7B else { return nil }
        i += 1
        skipSpace()
        var out: [(key: String, raw: String)] = []
        if i < b.count, b[i] == 0x7D {
            i += 1
            skipSpace()
            return i == b.count ? out : nil
        }
        while true {
            skipSpace()
            guard i < b.count, b[i] == 0x22 else { return nil }
            let keyStart = i
            guard skipString(),
                  let key = try? JSONText.decode(String.self, from: String(decoding: b[keyStart..<i], as: UTF8.self))
            else { return nil }
            skipSpace()
            guard i < b.count, b[i] == 0x3A else { return nil }
            i += 1
            skipSpace()
            let valueStart = i
            guard skipValue() else { return nil }
            out.append((key, String(decoding: b[valueStart..<i], as: UTF8.self)))
            skipSpace()
            guard i < b.count else { return nil }
            if b[i] == 0x2C { i += 1; continue }
            guard b[i] == 0x7D else { return nil }
            i += 1
            skipSpace()
            return i == b.count ? out : nil
        }
    }
}
