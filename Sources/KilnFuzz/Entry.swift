import Foundation
import Kiln

// Two ways to run the same targets (docs/testing.md):
//
// * libFuzzer (`-D KILN_LIBFUZZER -sanitize=fuzzer,address`, as `make fuzz` builds it): libFuzzer
//   supplies `main`; the target comes from the environment variable KILN_FUZZ_TARGET and every
//   libFuzzer flag works (`-max_total_time=60 Fuzz/corpus/url`).
// * standalone (a plain `swift build`): `KilnFuzz <target> [--seconds N] [--runs N] [--seed N]
//   [corpus-dir|file]...` replays the files, then runs a deterministic mutation loop from them.
//   For toolchains without libFuzzer (macOS), and to replay a crash file without sanitizers.

nonisolated(unsafe) var selectedTarget: FuzzTarget?

func target(named name: String?) -> FuzzTarget {
    guard let name, let t = FuzzTarget(rawValue: name) else {
        let list = FuzzTarget.allCases.map { "  \($0.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \($0.summary)" }
        FileHandle.standardError.write(Data("""
            KilnFuzz: name a target\(name.map { " (not '\($0)')" } ?? ""):
            \(list.joined(separator: "\n"))

            """.utf8))
        exit(2)
    }
    return t
}

#if KILN_LIBFUZZER
import KilnFuzzDriver

// libFuzzer's hooks. SwiftPM links executables with `main` aliased to `KilnFuzz_main`; whichever
// `main` the linker keeps (ours below, or libFuzzer's), these are what libFuzzer calls.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    selectedTarget = target(named: ProcessInfo.processInfo.environment["KILN_FUZZ_TARGET"])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedTarget!.run(bytes)
    return 0
}

@main
struct KilnFuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
    }
}

#else

@main
struct KilnFuzzMain {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        let t = target(named: args.isEmpty ? nil : args.removeFirst())
        var seconds = 10.0, runs = Int.max, seed: UInt64 = 1
        var inputs: [String] = []
        while !args.isEmpty {
            let a = args.removeFirst()
            switch a {
            case "--seconds": seconds = Double(args.isEmpty ? "" : args.removeFirst()) ?? seconds
            case "--runs": runs = Int(args.isEmpty ? "" : args.removeFirst()) ?? runs
            case "--seed": seed = UInt64(args.isEmpty ? "" : args.removeFirst()) ?? seed
            default: inputs.append(a)
            }
        }
        var corpus: [[UInt8]] = []
        for path in inputs {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            let files = isDir.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for f in files { if let d = FileManager.default.contents(atPath: f) { corpus.append(Array(d)) } }
        }
        for input in corpus { t.run(input) }  // replay first: a crash file reproduces here
        if corpus.isEmpty { corpus = [[]] }
        var rng = SplitMix64(seed: seed)
        let start = Date()
        var n = 0
        while n < runs, Date().timeIntervalSince(start) < seconds {
            var input = corpus[Int(rng.next() % UInt64(corpus.count))]
            Mutator.mutate(&input, &rng, corpus: corpus)
            t.run(input)
            if input.count < 4096, rng.next() % 64 == 0 { corpus.append(input) }  // keep some variety
            n += 1
        }
        print("KilnFuzz \(t.rawValue): \(n) mutated runs + \(inputs.isEmpty ? 0 : corpus.count) replayed in \(String(format: "%.1f", Date().timeIntervalSince(start)))s, seed \(seed), no crash")
    }
}

/// Byte-level mutations in the spirit of libFuzzer's: flips, inserts of interesting bytes and
/// tokens, deletes, duplications and splices with another corpus entry.
enum Mutator {
    static let tokens: [[UInt8]] = [
        "\r\n", "*", "$", ":", "+", "-", "-1", "0", "9223372036854775807", "-9223372036854775808",
        "1e308", "NaN", "{", "}", "[", "]", "\"", "\\u0000", "\\ud800", "@", "[::1]", "redis://",
        "unix://", "?db=", "%", "%zz", "ms", "s", "m", "h", ".", "\u{0663}", "\u{00BD}", "\u{FFFD}",
        "\0", "\u{1}", "\u{2}", "\u{3}", "io", "cpu", "type", "payload", "timeout_ms", "null",
    ].map { Array($0.utf8) }

    static func mutate(_ d: inout [UInt8], _ rng: inout SplitMix64, corpus: [[UInt8]]) {
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let pos = d.isEmpty ? 0 : Int(rng.next() % UInt64(d.count + 1))
            switch rng.next() % 7 {
            case 0 where !d.isEmpty: d[min(pos, d.count - 1)] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
            case 1: d.insert(UInt8(truncatingIfNeeded: rng.next()), at: pos)
            case 2: d.insert(contentsOf: tokens[Int(rng.next() % UInt64(tokens.count))], at: pos)
            case 3 where !d.isEmpty:
                let end = min(d.count, pos + 1 + Int(rng.next() % 8))
                if pos < end { d.removeSubrange(pos..<end) }
            case 4 where pos < d.count:
                let end = min(d.count, pos + 1 + Int(rng.next() % 16))
                d.insert(contentsOf: Array(d[pos..<end]), at: pos)
            case 5:
                let other = corpus[Int(rng.next() % UInt64(corpus.count))]
                if !other.isEmpty {
                    let a = Int(rng.next() % UInt64(other.count))
                    d.insert(contentsOf: other[a...], at: pos)
                }
            default:
                d.append(UInt8(truncatingIfNeeded: rng.next() % 128))
            }
        }
        if d.count > 8192 { d.removeLast(d.count - 8192) }
    }
}

#endif
