import Metrics
import Synchronization

/// A metrics backend that only keeps running totals in memory (atomic adds, no export): what a
/// real backend such as swift-prometheus costs per recording, give or take. `kiln worker` uses
/// it when `KILN_BENCH_METRICS=counting` (set by `kiln-bench` with `BENCH_METRICS=counting`) so
/// the benchmarks can measure Kiln's metrics with a backend that does work.
final class CountingMetrics: MetricsFactory {
    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler, MeterHandler, Sendable {
        let count = Atomic<Int64>(0)
        let sum = Atomic<Int64>(0)

        func increment(by amount: Int64) { _ = sum.add(amount, ordering: .relaxed) }
        func increment(by amount: Double) { _ = sum.add(Int64(amount), ordering: .relaxed) }
        func decrement(by amount: Double) { _ = sum.subtract(Int64(amount), ordering: .relaxed) }
        func set(_ value: Int64) { sum.store(value, ordering: .relaxed) }
        func set(_ value: Double) { sum.store(Int64(value), ordering: .relaxed) }
        func reset() { sum.store(0, ordering: .relaxed) }
        func record(_ value: Int64) {
            _ = count.add(1, ordering: .relaxed)
            _ = sum.add(value, ordering: .relaxed)
        }
        func record(_ value: Double) { record(Int64(value)) }
        func recordNanoseconds(_ duration: Int64) { record(duration) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler { Handler() }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> FloatingPointCounterHandler { Handler() }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler { Handler() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler { Handler() }
    func makeMeter(label: String, dimensions: [(String, String)]) -> MeterHandler { Handler() }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}
    func destroyMeter(_ handler: MeterHandler) {}
}
