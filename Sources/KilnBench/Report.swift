import Foundation
import Kiln

/// A small JSON value: keys keep their order, so the results file reads top to bottom.
indirect enum J: Sendable {
    case null, bool(Bool), int(Int), num(Double), str(String), arr([J]), obj([(String, J)])

    static func opt(_ d: Double?) -> J { d.map { .num($0) } ?? .null }

    func render(_ indent: String = "") -> String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .num(let d): return d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(format: "%.6g", d)) : "null"
        case .str(let s): return JSONText.quote(s)
        case .arr(let a):
            if a.isEmpty { return "[]" }
            if a.allSatisfy({ if case .obj = $0 { return false }; if case .arr = $0 { return false }; return true }) {
                return "[" + a.map { $0.render() }.joined(separator: ", ") + "]"
            }
            let inner = indent + "  "
            return "[\n" + a.map { inner + $0.render(inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .obj(let o):
            if o.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + o.map { inner + JSONText.quote($0.0) + ": " + $0.1.render(inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }
}

/// A target from the issue: `value op bound`.
struct Target: Sendable {
    enum Op: String, Sendable { case atLeast = "≥", atMost = "≤" }
    let op: Op
    let bound: Double
    /// The target was set for the full-size run; at another BENCH_SCALE the comparison is only indicative.
    let sizeDependent: Bool

    static func atLeast(_ b: Double, sizeDependent: Bool = false) -> Target { Target(op: .atLeast, bound: b, sizeDependent: sizeDependent) }
    static func atMost(_ b: Double, sizeDependent: Bool = false) -> Target { Target(op: .atMost, bound: b, sizeDependent: sizeDependent) }

    func met(_ v: Double) -> Bool { op == .atLeast ? v >= bound : v <= bound }
}

/// Which Redis limit a throughput figure is compared with.
enum LimitKind: String, Sendable {
    case lpush = "LPUSH"
    case rpop = "RPOP"
}

/// One measured figure, as a row of the results table.
struct Figure: Sendable {
    let workload: String
    let name: String
    let value: Double
    let unit: String
    var target: Target? = nil
    /// For throughputs: the ratio to this redis-benchmark command's rate (plain and -P 100).
    var limit: LimitKind? = nil
    var note: String = ""
}

/// Everything one run produced.
struct BenchReport: Sendable {
    var startedAt = Date()
    var config: BenchConfig
    var machine: [(String, J)] = []
    var redisLimits: [String: (rps: Double, p50ms: Double?)] = [:]   // "LPUSH", "RPOP", "LPUSH -P 100", …
    var redisBenchCommand = ""
    var figures: [Figure] = []
    var details: [(String, J)] = []
    var errors: [(String, String)] = []
    var commandBreakdown: [(String, [(String, Double)])] = []   // workload → (command, calls per job)
    var cpuBreakdown: [(String, [(String, Double)])] = []       // workload → (process, CPU µs per job)
    var wallSeconds: Double = 0

    func limit(_ kind: LimitKind, pipelined: Bool) -> Double? {
        redisLimits[kind.rawValue + (pipelined ? " -P 100" : "")]?.rps
    }

    static func fmt(_ v: Double, _ unit: String) -> String {
        switch unit {
        case "jobs/s", "req/s": return v >= 100 ? Self.grouped(Int(v.rounded())) : String(format: "%.1f", v)
        case "ms": return v < 10 ? String(format: "%.3f", v) : String(format: "%.1f", v)
        case "s": return String(format: "%.3f", v)
        case "MB": return String(format: "%.1f", v)
        case "×": return String(format: "%.2f", v)
        default: return v == v.rounded() && abs(v) < 1e12 ? String(Int(v)) : String(format: "%.2f", v)
        }
    }

    static func grouped(_ n: Int) -> String {
        let s = String(abs(n))
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }

    func metText(_ f: Figure) -> String {
        guard let t = f.target else { return "" }
        let ok = t.met(f.value) ? "met" : "**not met**"
        if t.sizeDependent && config.scale != 1.0 { return ok + " (size-dependent; scale \(config.scale))" }
        return ok
    }

    func ratioText(_ f: Figure, pipelined: Bool) -> String {
        guard let k = f.limit, let l = limit(k, pipelined: pipelined), l > 0 else { return "" }
        return String(format: "%.3f", f.value / l)
    }

    var json: J {
        let limits: J = .obj(redisLimits.keys.sorted().map { k in
            (k, .obj([("rps", .num(redisLimits[k]!.rps)), ("p50_ms", .opt(redisLimits[k]!.p50ms))]))
        })
        let figs: J = .arr(figures.map { f in
            var o: [(String, J)] = [("workload", .str(f.workload)), ("name", .str(f.name)), ("value", .num(f.value)), ("unit", .str(f.unit))]
            if let t = f.target {
                o.append(("target", .obj([("op", .str(t.op == .atLeast ? ">=" : "<=")), ("bound", .num(t.bound)), ("size_dependent", .bool(t.sizeDependent))])))
                o.append(("met", .bool(t.met(f.value))))
            }
            if let k = f.limit {
                o.append(("limit", .str(k.rawValue)))
                o.append(("ratio_to_limit", .opt(limit(k, pipelined: false).map { f.value / $0 })))
                o.append(("ratio_to_limit_pipelined", .opt(limit(k, pipelined: true).map { f.value / $0 })))
            }
            if !f.note.isEmpty { o.append(("note", .str(f.note))) }
            return .obj(o)
        })
        return .obj([
            ("started_at", .str(ISO8601DateFormatter().string(from: startedAt))),
            ("wall_seconds", .num(wallSeconds)),
            ("config", config.json),
            ("machine", .obj(machine)),
            ("redis_benchmark", .obj([("command", .str(redisBenchCommand)), ("results", limits)])),
            ("figures", figs),
            ("redis_commands_per_job", .obj(commandBreakdown.map { w in (w.0, .obj(w.1.map { ($0.0, .num($0.1)) })) })),
            ("cpu_us_per_job", .obj(cpuBreakdown.map { w in (w.0, .obj(w.1.map { ($0.0, .num($0.1)) })) })),
            ("details", .obj(details)),
            ("errors", .obj(errors.map { ($0.0, .str($0.1)) })),
        ])
    }

    var markdown: String {
        var md = "# Kiln bench results\n\n"
        md += "Run \(ISO8601DateFormatter().string(from: startedAt)), BENCH_SCALE=\(config.scale), \(String(format: "%.0f", wallSeconds)) s in all.\n\n"
        md += "Machine: " + machine.map { "\($0.0) \(plain($0.1))" }.joined(separator: "; ") + "\n\n"
        md += "## Redis limit (same run, same Redis)\n\n`\(redisBenchCommand)`\n\n| command | requests/s | p50 |\n|---|---:|---:|\n"
        for k in redisLimits.keys.sorted() {
            let v = redisLimits[k]!
            md += "| \(k) | \(Self.grouped(Int(v.rps))) | \(v.p50ms.map { String(format: "%.3f ms", $0) } ?? "") |\n"
        }
        md += "\n## Figures and targets\n\n"
        md += "Ratios: the figure divided by redis-benchmark's rate for the named command, without and with `-P 100`.\n\n"
        md += "| workload | figure | measured | target | met | limit | ÷ limit | ÷ limit -P 100 |\n|---|---|---:|---|---|---|---:|---:|\n"
        for f in figures {
            let target = f.target.map { "\($0.op.rawValue) \(Self.fmt($0.bound, f.unit)) \(f.unit)" } ?? ""
            let name = f.note.isEmpty ? f.name : "\(f.name) (\(f.note))"
            md += "| \(f.workload) | \(name) | \(Self.fmt(f.value, f.unit)) \(f.unit) | \(target) | \(metText(f)) | \(f.limit?.rawValue ?? "") | \(ratioText(f, pipelined: false)) | \(ratioText(f, pipelined: true)) |\n"
        }
        if !commandBreakdown.isEmpty {
            md += "\n## Redis commands per job (INFO commandstats, script inner calls included)\n\n"
            for (w, cmds) in commandBreakdown {
                let total = cmds.first(where: { $0.0 == "total" })?.1 ?? 0
                let rest = cmds.filter { $0.0 != "total" }.sorted { $0.1 > $1.1 }.filter { $0.1 >= 0.005 }
                md += "- **\(w)**: \(String(format: "%.2f", total)) — " + rest.map { "\($0.0) \(String(format: "%.2f", $0.1))" }.joined(separator: ", ") + "\n"
            }
        }
        if !cpuBreakdown.isEmpty {
            md += "\n## CPU time per job (µs, from /proc/PID/stat; 10 ms ticks, rough in small runs)\n\n"
            for (w, parts) in cpuBreakdown {
                md += "- **\(w)**: " + parts.map { "\($0.0) \(String(format: "%.1f", $0.1))" }.joined(separator: ", ") + "\n"
            }
        }
        if !errors.isEmpty {
            md += "\n## Errors\n\n"
            for (w, e) in errors { md += "- \(w): \(e)\n" }
        }
        return md
    }

    private func plain(_ j: J) -> String {
        switch j {
        case .str(let s): return s
        case .int(let i): return String(i)
        case .num(let d): return String(format: "%.2f", d)
        default: return j.render()
        }
    }
}
