import Foundation
import Kiln
import KilnRedis
import KilnWorker
import Logging

#if canImport(Glibc)
import Glibc
#endif

// kiln-bench: starts its own Redis, measures redis-benchmark's LPUSH/RPOP rates on it, runs the
// workloads W1–W6 against `kiln worker` processes (the release `kiln` next to this binary), and
// writes bench-results/latest.json and latest.md. See docs/performance.md.

signal(SIGPIPE, SIG_IGN)
LoggingSystem.bootstrap { label in
    var h = StreamLogHandler.standardError(label: label)
    h.logLevel = .warning
    return h
}

enum BenchClock {
    static let start = ContinuousClock.now
    static var elapsed: Double { seconds(ContinuousClock.now - start) }
}
_ = BenchClock.start

func log(_ s: String) {
    FileHandle.standardError.write(Data("[kiln-bench \(String(format: "%6.1f", BenchClock.elapsed)) s] \(s)\n".utf8))
}

func machineInfo(redisVersion: String) -> [(String, J)] {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    var uts = utsname()
    uname(&uts)
    let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    return [
        ("nproc", .int(ProcessInfo.processInfo.activeProcessorCount)),
        ("cpu", .str(model)),
        ("kernel", .str(release)),
        ("redis", .str(redisVersion)),
        ("loadavg_at_start", .str(load)),
    ]
}

func runBench() async -> Int32 {
    let config: BenchConfig
    do { config = try BenchConfig.fromEnvironment() } catch {
        log("error: \(error)")
        return 2
    }
    let env: BenchEnv
    do { env = try BenchEnv() } catch {
        log("error: \(error)")
        return 1
    }
    defer { env.stop() }
    log("redis-server on 127.0.0.1:\(env.redis.port) (dir \(env.dir)); kiln at \(env.kilnPath); BENCH_SCALE=\(config.scale)")

    var report = BenchReport(config: config)
    let info = (try? await env.send(["INFO", "server"]).string) ?? ""
    let version = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }.map { String($0.dropFirst("redis_version:".count)) } ?? "unknown"
    report.machine = machineInfo(redisVersion: version)

    // The Redis limit, same run, same server.
    do {
        for p in [nil, 100] as [Int?] {
            log("redis-benchmark -t lpush,rpop -n \(config.redisBenchRequests)\(p.map { " -P \($0)" } ?? "")")
            let (cmd, results) = try await env.redisBenchmark(requests: config.redisBenchRequests, pipeline: p)
            for (k, v) in results { report.redisLimits[k + (p.map { " -P \($0)" } ?? "")] = (v.0, v.1) }
            if p == nil { report.redisBenchCommand = cmd + " (then again with -P 100)" }
        }
        try await env.flushAll()
    } catch {
        report.errors.append(("redis-benchmark", "\(error)"))
        log("redis-benchmark failed: \(error)")
    }

    var w = Workloads(env: env, config: config, report: report)
    let steps: [(String, String)] = [
        ("w1", "W1 enqueue"), ("w2", "W2 drain"), ("w3", "W3 I/O fan-out"), ("w4", "W4 round trip"), ("w5", "W5 CPU"), ("w6", "W6 pool overhead"),
        ("w7", "W7 waiting on many jobs"),
    ]
    for (key, title) in steps where config.runs(key) {
        log("\(title)…")
        let t = ContinuousClock.now
        do {
            switch key {
            case "w1": try await w.w1()
            case "w2": try await w.w2()
            case "w3": try await w.w3()
            case "w4": try await w.w4()
            case "w5": try await w.w5()
            case "w6": try await w.w6()
            default: try await w.w7()
            }
            log("\(title) done in \(String(format: "%.1f", seconds(ContinuousClock.now - t))) s")
        } catch {
            w.report.errors.append((title, "\(error)"))
            log("\(title) failed: \(error)")
            try? await env.flushAll()
        }
    }
    report = w.report
    report.wallSeconds = BenchClock.elapsed
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    report.machine.append(("loadavg_at_end", .str(load)))

    do {
        try FileManager.default.createDirectory(atPath: config.outDir, withIntermediateDirectories: true)
        try (report.json.render() + "\n").write(toFile: config.outDir + "/latest.json", atomically: true, encoding: .utf8)
        try report.markdown.write(toFile: config.outDir + "/latest.md", atomically: true, encoding: .utf8)
    } catch {
        log("cannot write results to \(config.outDir): \(error)")
        return 1
    }
    print(report.markdown)
    log("wrote \(config.outDir)/latest.json and \(config.outDir)/latest.md")
    return report.errors.isEmpty ? 0 : 1
}

exit(await runBench())
