// kiln-chaos: `kiln-chaos run` drives a bounded chaos run against its own Redis and workers and
// checks that nothing was lost (see docs/reliability.md); `kiln-chaos worker NAME` is one of its
// workers (built-in Kiln worker with the chaos job types).
import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging

PoolChild.runIfChild(registry: ChaosJobs.registry())

let args = CommandLine.arguments.dropFirst()
let env = ProcessInfo.processInfo.environment
switch args.first {
case "worker":
    exit(await ChaosWorker.run(
        redisURL: env["KILN_REDIS_URL"] ?? "redis://127.0.0.1:6379", queue: "chaos", concurrency: 64,
        lease: .seconds(2), name: env["CHAOS_WORKER"] ?? "chaos", label: "kiln-chaos worker"))
case "hosts":  // the multi-host run (scripts/test-hosts.sh, docs/multi-host.md)
    exit(await HostsCommand.main(Array(args.dropFirst())))
case "run", nil:
    let mixName = env["CHAOS_MIX"].flatMap { $0.isEmpty ? nil : $0 } ?? "standard"
    guard let mix = ChaosMix(rawValue: mixName) else {
        let e = ChaosConfigError(description: "CHAOS_MIX=\(mixName) is not a mix: use \(ChaosMix.allCases.map(\.rawValue).joined(separator: " or ")) (see docs/reliability.md)")
        FileHandle.standardError.write(Data("kiln-chaos: \(e)\n".utf8))
        exit(2)
    }
    let config = ChaosConfig(
        seconds: Int(env["CHAOS_SECONDS"] ?? "") ?? 180,
        jobs: Int(env["CHAOS_JOBS"] ?? "") ?? 3000,
        seed: UInt64(env["CHAOS_SEED"] ?? "") ?? UInt64(Date().timeIntervalSince1970),
        mix: mix)
    do {
        let ok = try await ChaosRun(config: config).run()
        exit(ok ? 0 : 1)
    } catch {
        FileHandle.standardError.write(Data("kiln-chaos: \(error)\n".utf8))
        exit(2)
    }
default:
    FileHandle.standardError.write(Data("usage: kiln-chaos [run | worker | hosts]   (CHAOS_SECONDS, CHAOS_JOBS, CHAOS_SEED, CHAOS_MIX=standard|poison)\n".utf8))
    exit(2)
}
