import Foundation
@testable import Kiln
import Testing

/// The JSON scan decides by RFC 8259's grammar: it accepts what Foundation's parser accepts, plus
/// numbers a `Double` cannot hold (Kiln keeps numbers as text), and nothing else.
@Suite struct JSONScannerTests {
    static func foundationAccepts(_ s: String) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed])) != nil
    }

    /// Foundation accepts it, or refuses it only for a number out of a `Double`'s range.
    static func foundationAcceptsBut(numbers s: String) -> Bool {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed])
            return true
        } catch {
            return ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "").contains("not representable")
        }
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
                     "1 2", "[", "[[[]]", "NaN", "Infinity", "--1", "0x10", "'a'", "[1,,2]", "{,}", "\u{0}",
                     String(repeating: "[", count: 70) + String(repeating: "]", count: 70), "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\uzzzz\""]
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
            #expect(Self.foundationAcceptsBut(numbers: s), "the scan accepted '\(s)', which Foundation rejects")
        }
        for s in cases where ["\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\uzzzz\""].contains(s) {
            #expect(!JSONScanner.isPlainValid(s), "the scan accepted '\(s)'")
        }
    }

    @Test func acceptsNumbersADoubleCannotHoldAndEveryCharacterEscape() {
        for s in ["1e400", "-1e999", "1.5e-400", "9007199254740993", "123456789012345678901234567890123456789012345",
                  "{\"n\":9007199254740993,\"f\":1e400}", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"\\u0000\""] {
            #expect(JSONScanner.isPlainValid(s), "\(s)")
            #expect(JSONText.isValid(s), "\(s)")
        }
    }

    @Test func validateStillExplainsRejections() {
        #expect(throws: KilnError.self) { try JSONText.validate("{oops") }
        #expect(JSONText.isValid("{\"a\":\"\\u00e9\"}"))
        #expect(throws: KilnError.self) { try JSONText.validate("\"\\ud800\"") }
    }
}
