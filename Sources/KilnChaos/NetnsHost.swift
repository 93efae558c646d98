import Foundation
import Kiln
import KilnTestSupport
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// One "machine" of the multi-host run: a network namespace with one worker process in it
/// (started through `ip netns exec`, which execs, so the worker keeps the pid we spawned), whose
/// only link is a veth to the bridge. The faults: its bridge port goes down (cut) and up again;
/// every process in the namespace is SIGSTOPped and SIGCONTed (stall).
final class NetnsHost: @unchecked Sendable {
    let name: String
    let namespace: String
    let ip: String
    let bridgeNamespace: String
    let dir: String
    private(set) var worker: SpawnedProcess?

    init(name: String, namespace: String, ip: String, bridgeNamespace: String, dir: String) {
        self.name = name
        self.namespace = namespace
        self.ip = ip
        self.bridgeNamespace = bridgeNamespace
        self.dir = dir
    }

    var log: String { "\(dir)/\(name).log" }

    /// Starts this host's worker: `ip netns exec NS kiln-chaos hosts worker`.
    func start(redis: String, ledger: String, concurrency: Int) throws {
        var env = ProcessInfo.processInfo.environment
        env["KILN_REDIS_URL"] = redis
        env["CHAOS_LEDGER"] = ledger
        env["CHAOS_WORKER"] = name
        env["HOSTS_CONCURRENCY"] = String(concurrency)
        worker = try SpawnedProcess([ip, "netns", "exec", namespace, ProcessPool.currentExecutable, "hosts", "worker"],
                                    environment: env, stderr: log)
    }

    /// Cuts the host off the network (its port on the bridge goes down: packets to and from it are
    /// dropped, as when a cable is pulled at the switch), or plugs it back in.
    func link(up: Bool) async throws {
        _ = try await run([ip, "-n", bridgeNamespace, "link", "set", name, up ? "up" : "down"])
    }

    /// Every process in the namespace: the worker and its pool children.
    func pids() async throws -> [pid_t] {
        try await run([ip, "netns", "pids", namespace]).split(whereSeparator: \.isNewline).compactMap { pid_t($0) }
    }

    /// Sends `sig` to every process in the namespace; lists them again until no new one shows up
    /// (a pool child started meanwhile). Returns the pids signalled.
    @discardableResult
    func signalAll(_ sig: Int32) async throws -> [pid_t] {
        var done = Set<pid_t>()
        for _ in 0..<5 {
            let now = Set(try await pids()).subtracting(done)
            if now.isEmpty { break }
            for p in now { kill(p, sig) }
            done.formUnion(now)
        }
        return done.sorted()
    }

    /// Stops the worker: SIGTERM (it drains for its 2 s grace), SIGKILL after 10 s.
    func stop() async {
        guard let worker else { return }
        worker.signal(SIGCONT)
        worker.signal(SIGTERM)
        if await worker.wait(timeout: .seconds(10)) == nil {
            worker.signal(SIGKILL)
            _ = await worker.wait(timeout: .seconds(5))
        }
    }

    /// Runs a short command (an `ip` call) and returns its stdout; throws a one-line error if it
    /// fails or takes more than 10 s.
    private func run(_ argv: [String]) async throws -> String {
        let out = "\(dir)/ip-\(name)-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(out) }
        let p = try SpawnedProcess(argv, environment: ProcessInfo.processInfo.environment, stdout: out, stderr: out)
        guard let status = await p.wait(timeout: .seconds(10)) else {
            p.signal(SIGKILL)
            throw HostsError("'\(argv.joined(separator: " "))' did not finish within 10 s")
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let why = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? "exit \(status)"
            throw HostsError("'\(argv.joined(separator: " "))' failed: \(why)")
        }
        return text
    }
}
