import Foundation
import Testing

/// The short chaos run (about 30 s of chaos): workers killed, stopped, shut down; Redis restarted
/// and made unreachable; cancels and timeouts; then the ledger check. `make chaos` runs the long one.
@Suite(.serialized) struct ChaosTests {
    static var binary: String {
        URL(fileURLWithPath: KilnBinary.path).deletingLastPathComponent().appendingPathComponent("kiln-chaos").path
    }

    @Test func shortChaosRunLosesNothing() async throws {
        let p = try ChildProcess([Self.binary, "run"], environment: [
            "CHAOS_SECONDS": "30", "CHAOS_JOBS": "300", "CHAOS_TTL": "10", "CHAOS_SEED": "\(Int.random(in: 1...1_000_000))",
        ])
        let code = try await p.wait(timeout: .seconds(400))
        #expect(code == 0, "chaos run failed:\n\(p.output.suffix(4000))")
        #expect(p.stdout.contains("| lost                          | 0 |"))
        #expect(p.stdout.contains("kiln-chaos: PASS"))
    }
}
