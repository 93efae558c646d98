import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What `kiln-chaos hosts run` needs: where Redis is, which network namespace each host is, the
/// `ip` binary and the bridge's namespace (to cut a host's link), and the size of the run.
struct HostsConfig {
    var ip = "/usr/sbin/ip"
    var redis = ""
    var bridgeNamespace = ""
    var dir = ""
    /// (host name, its network namespace); the host name is also its veth port on the bridge.
    var hosts: [(name: String, namespace: String)] = []
    var jobs = 20_000
    var seed: UInt64 = 1
    var concurrency = 16
    /// The lease the workers take (the cut and the stall each last at least twice this).
    static let lease = Duration.seconds(2)
    static let queue = "hosts"

    init(parsing args: [String], environment env: [String: String]) throws {
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw KilnError(.invalidInput, "\(flag) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--ip": ip = try value("--ip")
            case "--redis": redis = try value("--redis")
            case "--bridge": bridgeNamespace = try value("--bridge")
            case "--dir": dir = try value("--dir")
            case "--host":
                let v = try value("--host")
                let parts = v.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw KilnError(.invalidInput, "--host wants NAME=NAMESPACE, got '\(v.prefix(60))'")
                }
                hosts.append((parts[0], parts[1]))
            default: throw KilnError(.invalidInput, "unknown argument '\(args[i].prefix(40))'")
            }
            i += 1
        }
        if redis.isEmpty || bridgeNamespace.isEmpty || dir.isEmpty {
            throw KilnError(.invalidInput, "--redis, --bridge and --dir are required")
        }
        if hosts.count < 3 { throw KilnError(.invalidInput, "need at least 3 --host (one is cut, one stalled), got \(hosts.count)") }
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) throws -> Int {
            guard let text = env[key] else { return fallback }
            guard let n = Int(text), range.contains(n) else {
                throw KilnError(.invalidInput, "\(key) must be a number from \(range.lowerBound) to \(range.upperBound), got '\(text.prefix(20))'")
            }
            return n
        }
        jobs = try number("HOSTS_JOBS", 100...1_000_000, 20_000)
        concurrency = try number("HOSTS_CONCURRENCY", 1...1024, 16)
        seed = UInt64(try number("HOSTS_SEED", 0...Int.max, Int(Date().timeIntervalSince1970)))
    }
}

/// `kiln-chaos hosts run …` is the multi-host run (started by scripts/test-hosts.sh inside the ctl
/// namespace); `kiln-chaos hosts worker` is one host's worker (started by the run in that host's
/// namespace through `ip netns exec`).
enum HostsCommand {
    static func main(_ args: [String]) async -> Int32 {
        let env = ProcessInfo.processInfo.environment
        switch args.first {
        case "worker":
            return await worker(env)
        case "run":
            do {
                let config = try HostsConfig(parsing: Array(args.dropFirst()), environment: env)
                return try await HostsRun(config: config).run() ? 0 : 1
            } catch {
                FileHandle.standardError.write(Data("kiln-chaos hosts: \(error)\n".utf8))
                return 2
            }
        default:
            FileHandle.standardError.write(Data("usage: kiln-chaos hosts run --redis URL --bridge NETNS --dir DIR --host NAME=NETNS … [--ip PATH] | kiln-chaos hosts worker\n".utf8))
            return 2
        }
    }

    /// A worker with the chaos job types: lease 2 s, command timeout 2 s (so a cut link is noticed
    /// within one lease), one pool process, HOSTS_CONCURRENCY I/O jobs at once.
    static func worker(_ env: [String: String]) async -> Int32 {
        await ChaosWorker.run(
            redisURL: env["KILN_REDIS_URL"] ?? "", queue: HostsConfig.queue,
            concurrency: Int(env["HOSTS_CONCURRENCY"] ?? "") ?? 16, lease: HostsConfig.lease,
            name: env["CHAOS_WORKER"] ?? "host", label: "kiln-chaos hosts worker")
    }
}

/// A one-line error of the multi-host run.
struct HostsError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}
