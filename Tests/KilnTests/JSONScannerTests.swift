import Foundation
@testable import Kiln
import Testing

/// The quick JSON scan may only accept what Foundation's parser accepts (it is a fast path, never
/// more lenient), and it should accept the everyday payloads.
@Suite struct JSONScannerTests {
    static func foundationAccepts(_ s: String) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed])) != nil
    }

    @Test func acceptsEverydayPayloads() {
        for s in ["null", "true", "false", "0", "-0", "12", "-3.25", "1e10", "2.5E-3", "\"x\"", "\"a\\\"b\\\\c\\/d\\n\"",
                  "{}", "[]", " { \"ms\" : 100 } ", "{\"data\":\"x\",\"n\":[1,2,{\"k\":null}]}", "\"héllo ✓\""] {
            #expect(JSONScanner.isPlainValid(s), "\(s)")
            #expect(Self.foundationAccepts(s), "\(s)")
        }
    }

    @Test func neverAcceptsWhatFoundationRejects() {
        var cases = ["", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "+1", "1e", "1e+",
                     "tru", "nul", "nulll", "\"abc", "\"a\tb\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "[1 2]", "{\"a\":}",
                     "1 2", "[", "[[[]]", "NaN", "Infinity", "1e999", "--1", "0x10", "'a'", "[1,,2]", "{,}", "\u{0}",
                     String(repeating: "[", count: 70) + String(repeating: "]", count: 70), "123456789012345678901234567890123456789012345"]
        // Random mutations of valid documents.
        var rng = SystemRandomNumberGenerator()
        let seeds = ["{\"a\":[1,2.5e3,\"x\",null,true]}", "[{\"k\":\"v\\n\"},-0.5]", "\"s\""]
        let alphabet = Array("{}[]\",:.-+eE0123456789 tfnul\\/ux".utf8)
        for _ in 0..<3000 {
            var b = Array(seeds.randomElement(using: &rng)!.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b.remove(at: at)
                case 1: b.insert(alphabet.randomElement(using: &rng)!, at: at)
                default: b[at] = alphabet.randomElement(using: &rng)!
                }
                if b.isEmpty { b = [0x30] }
            }
            cases.append(String(decoding: b, as: UTF8.self))
        }
        for s in cases where JSONScanner.isPlainValid(s) {
            #expect(Self.foundationAccepts(s), "the quick scan accepted '\(s)', which Foundation rejects")
        }
    }

    @Test func validateStillExplainsRejections() {
        #expect(throws: KilnError.self) { try JSONText.validate("{oops") }
        #expect(JSONText.isValid("{\"a\":\"\\u00e9\"}"))   // \u escapes go to Foundation, which accepts them
    }
}
