import KilnRedis
import Logging

/// The client's retry policy for store calls: network failures (and "not now" replies such as
/// `LOADING`) are retried; everything else is wrapped as a `KilnError` and thrown.
extension KilnStore {
    /// Runs `body`, retrying network failures as `policy` says; wraps Redis errors.
    /// With a `deadline` (a waiter's), network failures are retried until then instead, with a
    /// pause that doubles up to 1 s: a waiter rides out a Redis restart like a worker does.
    package func withRetry<T>(_ policy: RetryPolicy, logger: Logger, until deadline: ContinuousClock.Instant? = nil,
                             _ body: () async throws -> T) async throws -> T {
        // Doubling from the policy's backoff; capped (30 s for a policy's tries, 1 s until a deadline).
        var backoff = Backoff(initial: policy.backoff, max: deadline == nil ? .seconds(30) : .seconds(1))
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch let e as RedisError where e.isTransient && attempt < policy.attempts && deadline == nil {
                logger.debug("retrying after a network error: \(e.message)")
                try await Task.sleep(for: backoff.next())
            } catch let e as RedisError where e.isTransient && deadline.map({ ContinuousClock.now < $0 }) == true {
                logger.debug("retrying until the wait's deadline after a network error: \(e.message)")
                try await Task.sleep(for: min(max(backoff.next(), .milliseconds(50)), deadline! - ContinuousClock.now))
            } catch {
                throw KilnError.wrap(error)
            }
            attempt += 1
        }
    }
}
