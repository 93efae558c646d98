import Synchronization
import Testing
@testable import KilnWorker

/// `JobControl`: the handler runs in a task whose handle the control keeps (no task reference
/// escapes its closure); a stop cancels it, the first cause wins, a stop before the start means
/// the handler never starts, and the caller's own cancellation reaches the handler.
@Suite struct JobControlTests {
    /// Sleeps up to 30 s; returns whether it saw cancellation.
    @Sendable static func sleeper() async -> Bool {
        do {
            try await Task.sleep(for: .seconds(30))
            return false
        } catch {
            return Task.isCancelled
        }
    }

    @Test func aStopCancelsTheRunningHandlerAndTheFirstCauseWins() async throws {
        let control = JobControl()
        let started = ContinuousClock.now
        async let stopper: Void = {
            try? await Task.sleep(for: .milliseconds(50))
            #expect(control.stop(.timedOut))
            #expect(!control.stop(.stopped(.cancel)), "a second cause must not replace the first")
        }()
        let sawCancel = await control.run(Self.sleeper)
        await stopper
        #expect(sawCancel == true)
        #expect(control.end() == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10), "the stop was not prompt")
        #expect(!control.stop(.stopped(.cancel)), "a stop after the end does nothing")
    }

    @Test func aStopBeforeTheStartMeansTheHandlerNeverStarts() async {
        let control = JobControl()
        #expect(control.stop(.stopped(.leaseLost)))
        let ran = Mutex(false)
        let value: Int? = await control.run {
            ran.withLock { $0 = true }
            return 1
        }
        #expect(value == nil && !ran.withLock { $0 })
        #expect(control.end() == .stopped(.leaseLost))
    }

    @Test func aHandlerThatReturnsIsNotStopped() async {
        let control = JobControl()
        #expect(await control.run { 42 } == 42)
        #expect(control.end() == nil)
        #expect(!control.stop(.timedOut))
        #expect(control.cause == nil)
    }

    @Test func theCallersCancellationReachesTheHandler() async {
        let control = JobControl()
        let job = Task { await control.run(Self.sleeper) }
        try? await Task.sleep(for: .milliseconds(50))
        job.cancel()
        #expect(await job.value == true)
        #expect(control.end() == nil, "no cause: nobody stopped the job")
    }

    /// A stop that races the start, many times: the handler either never starts or sees the
    /// cancellation; it never runs on unstopped.
    @Test func aStopRacingTheStartIsNeverLost() async {
        for _ in 0..<200 {
            let control = JobControl()
            async let stopped = control.stop(.stopped(.cancel))
            let saw = await control.run(Self.sleeper)
            _ = await stopped
            #expect(saw == nil || saw == true)
            #expect(control.end() == .stopped(.cancel))
        }
    }
}
