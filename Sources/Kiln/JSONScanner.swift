/// A fast, allocation-free check that bytes are one JSON value by RFC 8259's grammar: what
/// `JSONText.validate` accepts, for every enqueued and every fetched job.
///
/// Numbers are checked by their grammar only, never converted: a payload is carried as text, so
/// `9007199254740993` and `1e400` are valid and kept as written (Foundation's parser refuses what
/// a `Double` cannot hold). A `\u` escape must be a character (no lone surrogate). It answers
/// `false` beyond 64 levels of nesting, and for anything not JSON; the caller then asks
/// Foundation's parser, for the reason or the last word on deep documents.
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

        /// A string; UTF-8 was checked when the Swift string was made. A `\u` escape of half a
        /// surrogate pair must come with its other half (a lone one is no character).
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
                    case UInt8(ascii: "u"):
                        i += 1
                        guard let unit = hex4() else { return false }
                        if unit >= 0xDC00 && unit <= 0xDFFF { return false }
                        if unit >= 0xD800 && unit <= 0xDBFF {
                            guard peek == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else { return false }
                            i += 2
                            guard let low = hex4(), low >= 0xDC00 && low <= 0xDFFF else { return false }
                        }
                    default:
                        return false
                    }
                }
            }
            return false
        }

        /// Four hex digits, as a number.
        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: return nil
                }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }

        /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, of any length and magnitude (RFC 8259's
        /// grammar): Kiln carries numbers as text, so `1e400` and `9007199254740993` are kept as written.
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
                while digit(peek) { i += 1 }
            }
            return i > start
        }
    }
}
