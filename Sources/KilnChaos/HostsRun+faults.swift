import Foundation
import Kiln
import KilnWorker

#if canImport(Glibc)
import Glibc
#endif

/// The fault driver of the multi-host run. Every step waits on a condition it observes (the
/// ledger, the count of final jobs), each with a deadline; a deadline missed is a violation.
extension HostsRun {
    /// How long a fault step may wait for what it expects.
    static let stepDeadline = Duration.seconds(30)

    func drive(cut: NetnsHost, stall: NetnsHost, jobs: [String: HostJob], total: Int) async {
        let tail = LedgerTail(path: ledger)
        // (a) Cut `cut` off mid-job, once 8 % of the jobs are final and it runs a sleep and a spin (in
        // its pool), jobs that are run again when lost; plug it back in once its leases have long
        // expired and one of its jobs has started on another host; then it must take jobs again, in
        // the same worker process.
        guard await waitFor("\(cut.name) running a sleep and a spin after 8 % of the jobs", deadline: .seconds(120), {
            tail.refresh()
            return self.progress(total) >= 0.08 && Self.midJob(tail.runningIDs(on: cut.name), jobs)
        }) else { return }
        var f = HostFault(kind: .cut, host: cut.name)
        f.start = KilnClock.nowMs()
        let before = tail.runningIDs(on: cut.name)
        do { try await cut.link(up: false) } catch { problem("cut: \(error)"); return }
        f.applied = KilnClock.nowMs()
        tail.refresh()
        f.inFlight = before.union(tail.runningIDs(on: cut.name))
        print("kiln-chaos hosts: \(cut.name) cut off (link down) while running \(f.inFlight.count) job(s)")
        await waitReclaimed(f, tail: tail)
        f.end = KilnClock.nowMs()
        do { try await cut.link(up: true) } catch { problem("cut: \(error)") }
        print("kiln-chaos hosts: \(cut.name) back on the network after \(f.end - f.start) ms")
        await waitRejoined(&f, tail: tail)
        locked { faults.append(f) }

        // (b) Stall every process of `stall` (worker and pool child) once 25 % are final, while it runs
        // a sleep and a spin; resume it the same way.
        guard await waitFor("\(stall.name) running a sleep and a spin after 25 % of the jobs", deadline: .seconds(120), {
            tail.refresh()
            return self.progress(total) >= 0.25 && Self.midJob(tail.runningIDs(on: stall.name), jobs)
        }) else { return }
        var s = HostFault(kind: .stall, host: stall.name)
        s.start = KilnClock.nowMs()
        let running = tail.runningIDs(on: stall.name)
        do { s.stopped = try await stall.signalAll(SIGSTOP) } catch { problem("stall: \(error)"); return }
        s.applied = KilnClock.nowMs()
        tail.refresh()
        s.inFlight = running.union(tail.runningIDs(on: stall.name))
        print("kiln-chaos hosts: \(stall.name) stalled (SIGSTOP to pids \(s.stopped.map(String.init).joined(separator: " "))) while running \(s.inFlight.count) job(s)")
        await waitReclaimed(s, tail: tail)
        s.end = KilnClock.nowMs()
        do {
            for p in s.stopped { kill(p, SIGCONT) }
            try await stall.signalAll(SIGCONT)
        } catch { problem("stall: \(error)") }
        print("kiln-chaos hosts: \(stall.name) resumed (SIGCONT) after \(s.end - s.start) ms")
        await waitRejoined(&s, tail: tail)
        locked { faults.append(s) }
    }

    /// Whether a host runs a sleep (on its async loop) and a spin (in its pool) that will be run
    /// again if it loses them.
    static func midJob(_ running: Set<String>, _ jobs: [String: HostJob]) -> Bool {
        running.contains { jobs[$0]?.type == "chaos.sleep" && jobs[$0]?.rerunnable == true }
            && running.contains { jobs[$0]?.type == "chaos.spin" }
    }

    /// Waits until the fault has lasted two leases and one of the host's in-flight jobs has
    /// started on another host (its lease expired, a reaper put it back, another worker took it).
    private func waitReclaimed(_ fault: HostFault, tail: LedgerTail) async {
        let earliest = fault.start + 2 * KilnDuration.milliseconds(HostsConfig.lease)
        let ok = await waitFor("one of \(fault.host)'s in-flight jobs to start on another host (\(fault.kind.rawValue))", deadline: Self.stepDeadline) {
            tail.refresh()
            return KilnClock.nowMs() >= earliest
                && !tail.starts(since: fault.start, where: { $0.worker != fault.host && fault.inFlight.contains($0.id) }).isEmpty
        }
        if ok { print("kiln-chaos hosts: \(fault.host)'s jobs reclaimed and started elsewhere") }
    }

    /// Waits until the host starts a job again after the fault ended.
    private func waitRejoined(_ f: inout HostFault, tail: LedgerTail) async {
        let fault = f
        var first: Ledger.Entry?
        let ok = await waitFor("\(fault.host) to start a job after the \(fault.kind.rawValue) ended", deadline: Self.stepDeadline) {
            tail.refresh()
            first = tail.starts(since: fault.end, where: { $0.worker == fault.host }).first
            return first != nil
        }
        f.rejoined = first
        if ok, let first { print("kiln-chaos hosts: \(fault.host) took jobs again \(first.ms - fault.end) ms later") }
    }

    /// Polls `condition` every 50 ms until it holds (true) or `deadline` passes (false, and a
    /// violation naming what was awaited).
    func waitFor(_ what: String, deadline: Duration, _ condition: () -> Bool) async -> Bool {
        let end = ContinuousClock.now + deadline
        while ContinuousClock.now < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        if condition() { return true }
        problem("waited \(KilnDuration.format(deadline)) for \(what), in vain")
        return false
    }
}
