import Foundation
import Testing

/// The short chaos runs (about 30 s of chaos each): workers killed, stopped, shut down; Redis
/// restarted and made unreachable; cancels and timeouts; then the ledger check. `make chaos`
/// runs the long ones.
@Suite(.serialized) struct ChaosTests {
    static var binary: String {
        URL(fileURLWithPath: KilnBinary.path).deletingLastPathComponent().appendingPathComponent("kiln-chaos").path
    }

    func run(mix: String) async throws {
        let seed = Int.random(in: 1...1_000_000)
        let p = try ChildProcess([Self.binary, "run"], environment: [
            "CHAOS_SECONDS": "30", "CHAOS_JOBS": "300", "CHAOS_TTL": "10", "CHAOS_SEED": "\(seed)", "CHAOS_MIX": mix,
        ])
        let code = try await p.wait(timeout: .seconds(400))
        #expect(code == 0, "chaos run (mix \(mix), seed \(seed)) failed:\n\(p.output.suffix(4000))")
        #expect(p.stdout.contains("| lost                          | 0 |"))
        #expect(p.stdout.contains("unexplained 0"))
        #expect(p.stdout.contains("kiln-chaos: PASS"))
    }

    @Test func shortChaosRunLosesNothing() async throws {
        try await run(mix: "standard")
    }

    /// 30 % of the jobs abort their pool child: the pool must keep up (drain within 30 s of the
    /// chaos phase) and every other check must still hold.
    @Test func shortPoisonChaosRunLosesNothing() async throws {
        try await run(mix: "poison")
    }
}
