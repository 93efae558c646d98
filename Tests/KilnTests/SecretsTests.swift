import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Passwords never show up in logs, errors, or the argv/environment of processes Kiln starts.
@Suite(.serialized) struct SecretsTests {
    static let password = "pw-\(UUID().uuidString.prefix(8))-secret"

    func children(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { t in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// argv and environment of a process, NUL-separated as the kernel keeps them.
    func exposed(_ pid: pid_t) -> String {
        let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
        return String(decoding: cmdline + environ, as: UTF8.self)
    }

    @Test func passwordStaysOutOfLogsChildrenAndErrors() async throws {
        let redis = try TestRedis(password: Self.password)
        defer { redis.stop() }
        let cli = KilnCLI(redis: redis, prefix: "kiln")  // the URL, with the password, goes in the environment
        let worker = try await cli.startWorker(["--processes", "2"])
        try await eventually("pool up") { children(of: worker.pid).count == 2 }
        #expect(!exposed(worker.pid).split(separator: "\0").contains { $0.hasPrefix("--redis") })
        for child in children(of: worker.pid) {
            let text = exposed(child)
            #expect(!text.contains(Self.password), "pool child \(child) has the password in its argv or environment")
            #expect(!text.contains("KILN_REDIS_URL"), "pool child \(child) has KILN_REDIS_URL")
        }
        let r = try await cli.run("enqueue", "sha256", "{\"data\":\"x\"}", "--wait")
        #expect(r.code == 0, "\(r.stderr)")
        try await cli.stop(worker)
        #expect(worker.stderr.contains("redis://:***@127.0.0.1"), "the worker log should show the masked URL")
        #expect(!worker.output.contains(Self.password))

        // A password given on the command line is visible in ps: the worker says so, and still never logs it.
        let flagged = try ChildProcess([KilnBinary.path, "worker", "--processes", "0", "--redis", redis.url], environment: ["KILN_PREFIX": "kiln"])
        try await eventually("started") { flagged.stderr.contains("worker started") }
        flagged.signal(SIGTERM)
        _ = try await flagged.wait()
        #expect(flagged.stderr.contains("visible to other users in ps"))
        #expect(!flagged.stderr.contains(Self.password))

        // Errors: a wrong password and an unreachable server never echo what was given.
        let wrong = "wrong-\(Self.password)"
        for url in ["redis://:\(wrong)@127.0.0.1:\(redis.port)", "redis://:\(wrong)@127.0.0.1:\(TestRedis.freePort())", "redis://:\(wrong)@127.0.0.1:notaport"] {
            let p = try ChildProcess([KilnBinary.path, "enqueue", "noop"], environment: ["KILN_REDIS_URL": url])
            #expect(try await p.wait() != 0)
            #expect(!p.output.contains(wrong), "\(p.output)")
        }
    }
}
