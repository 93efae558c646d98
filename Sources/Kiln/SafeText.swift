import Foundation

/// Text from outside (flags, files, records written by other producers) on its way to a terminal
/// or a log: control characters are escaped so they can neither inject terminal sequences (ESC)
/// nor split one line into several; bytes that are not UTF-8 are refused, never replaced.
package enum SafeText {
    /// Whether `u` is a control character (C0, DEL or C1: Unicode category Cc).
    package static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0)
    }

    /// The first control character in `s`, if any.
    package static func firstControl(in s: String) -> Unicode.Scalar? {
        s.unicodeScalars.first(where: isControl)
    }

    /// `s` with every control character, and the bidirectional overrides and line separators
    /// that can reorder or split what a terminal shows, written as `\u{1B}`.
    package static func escaped(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars {
            if needsEscape(u) { out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    private static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        isControl(u) || (0x202A...0x202E).contains(u.value) || (0x2066...0x2069).contains(u.value)
            || u.value == 0x2028 || u.value == 0x2029
    }

    /// Decodes bytes that must be UTF-8; throws `KilnError(.invalidInput)` naming `what` and the
    /// offset of the first bad byte instead of replacing it with U+FFFD.
    package static func utf8(_ bytes: some Collection<UInt8>, what: String) throws -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        // Find the first bad byte for the message.
        let array = Array(bytes)
        var it = array.makeIterator()
        var decoder = UTF8()
        var offset = 0
        scan: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let u): offset += UTF8.width(u)
            case .emptyInput, .error: break scan
            }
        }
        let byte = offset < array.count ? String(format: "0x%02X", array[offset]) : "a cut-off character"
        throw KilnError(.invalidInput, "\(what) is not valid UTF-8 (\(byte) at byte \(offset)); Kiln stores text exactly as given, so it must be UTF-8")
    }

    /// `s` without a leading byte order mark (U+FEFF), which some editors put at the start of files.
    package static func droppingBOM(_ s: String) -> String {
        s.unicodeScalars.first == "\u{FEFF}" ? String(s.unicodeScalars.dropFirst()) : s
    }
}
