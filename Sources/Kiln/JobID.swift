import Foundation
import Synchronization

/// Job ids: 26-character ULIDs (48-bit millisecond time + 80 random bits, Crockford base32).
/// They sort by creation time, and are unique across machines without coordination. Within one
/// process ids made in the same millisecond are strictly increasing.
package enum JobID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private static let state = Mutex<(ms: UInt64, hi: UInt16, lo: UInt64)>((0, 0, 0))

    /// A new id.
    package static func make(now: Date = Date()) -> String {
        let ms = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let (t, hi, lo): (UInt64, UInt16, UInt64) = state.withLock { s in
            if ms <= s.ms {
                // Same (or earlier) millisecond: count up from the last random value.
                s.lo &+= 1
                if s.lo == 0 { s.hi &+= 1 }
            } else {
                s.ms = ms
                var g = SystemRandomNumberGenerator()
                s.hi = UInt16.random(in: 0...UInt16.max, using: &g)
                s.lo = UInt64.random(in: 0...UInt64.max, using: &g) >> 1  // leave room to count up
            }
            return (s.ms, s.hi, s.lo)
        }
        // 128 bits: 48 time | 16 hi | 64 lo; encode 26 chars of 5 bits (first char carries 3 bits).
        var out = [UInt8](repeating: 0, count: 26)
        let high: UInt64 = (t << 16) | UInt64(hi)  // 64 bits
        let low: UInt64 = lo
        for i in 0..<26 {
            let bitFromEnd = (25 - i) * 5  // position of this char's lowest bit, from bit 0 of 128
            var v: UInt64 = 0
            for b in 0..<5 {
                let pos = bitFromEnd + b
                let bit: UInt64
                if pos >= 128 { bit = 0 } else if pos >= 64 { bit = (high >> UInt64(pos - 64)) & 1 } else { bit = (low >> UInt64(pos)) & 1 }
                v |= bit << UInt64(b)
            }
            out[i] = alphabet[Int(v)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` can be a job id (1–128 characters without spaces, braces or colons), so that
    /// user-chosen ids cannot escape their key.
    package static func isValid(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128
            && text.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && !"{}:*?[]\\".unicodeScalars.contains($0) }
    }
}
