/// A fast, allocation-free check that bytes are one plain JSON value: the common case of
/// `JSONText.validate`, which runs for every enqueued and every fetched job.
///
/// It is conservative: it answers `true` only for documents it fully understands (nesting up to
/// 64 levels, numbers up to 40 characters, strings without `\u` escapes) and `false` for
/// everything else, in which case the caller asks Foundation's parser, which has the last word
/// and gives the reason. So it can make validation faster, never more lenient.
enum JSONScanner {
    static func isPlainValid(_ text: String) -> Bool {
        var copy = text
        return copy.withUTF8 { buf in
            var s = Scan(bytes: buf)
            s.skipSpace()
            guard s.value(depth: 0) else { return false }
            s.skipSpace()
            return s.i == buf.count
        }
    }

    private struct Scan {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            let w = word.utf8Start
            for k in 0..<n where bytes[i + k] != w[k] { return false }
            i += n
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth < 64, let c = peek else { return false }
            switch c {
            case UInt8(ascii: "{"): return object(depth: depth)
            case UInt8(ascii: "["): return array(depth: depth)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func object(depth: Int) -> Bool {
            i += 1
            skipSpace()
            if peek == UInt8(ascii: "}") { i += 1; return true }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\""), string() else { return false }
                skipSpace()
                guard peek == UInt8(ascii: ":") else { return false }
                i += 1
                skipSpace()
                guard value(depth: depth + 1) else { return false }
                skipSpace()
                guard let c = peek else { return false }
                i += 1
                if c == UInt8(ascii: "}") { return true }
                if c != UInt8(ascii: ",") { return false }
            }
        }

        mutating func array(depth: Int) -> Bool {
            i += 1
            skipSpace()
            if peek == UInt8(ascii: "]") { i += 1; return true }
            while true {
                skipSpace()
                guard value(depth: depth + 1) else { return false }
                skipSpace()
                guard let c = peek else { return false }
                i += 1
                if c == UInt8(ascii: "]") { return true }
                if c != UInt8(ascii: ",") { return false }
            }
        }

        /// A string without `\u` escapes; UTF-8 was checked when the Swift string was made.
        mutating func string() -> Bool {
            i += 1
            while let c = peek {
                i += 1
                if c == UInt8(ascii: "\"") { return true }
                if c < 0x20 { return false }
                if c == UInt8(ascii: "\\") {
                    guard let e = peek else { return false }
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 1
                    default:
                        return false  // \u escapes (and bad escapes): let Foundation decide
                    }
                }
            }
            return false
        }

        /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, at most 40 characters.
        mutating func number() -> Bool {
            let start = i
            func digit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
            if peek == UInt8(ascii: "-") { i += 1 }
            if peek == UInt8(ascii: "0") {
                i += 1
            } else {
                guard digit(peek) else { return false }
                while digit(peek) { i += 1 }
            }
            if peek == UInt8(ascii: ".") {
                i += 1
                guard digit(peek) else { return false }
                while digit(peek) { i += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                guard digit(peek) else { return false }
                var n = 0
                while digit(peek) { i += 1; n += 1 }
                if n > 2 { return false }  // huge exponents: let Foundation decide
            }
            return i - start <= 40
        }
    }
}
