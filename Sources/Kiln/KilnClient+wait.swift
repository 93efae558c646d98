import Foundation
import KilnRedis

extension KilnClient {
    /// Waits until the job is final and returns its record. Does not poll: every wait of this
    /// client shares one subscription to the queues' done channels (`ResultWaiters`), and the
    /// record is read once the subscription is confirmed and again when the job is announced,
    /// so it wakes within milliseconds of the job finishing, and any number of waits hold one
    /// connection. Redis going away (a restart, a dropped connection) is ridden out until the
    /// deadline. Throws `KilnError(.waitTimedOut)` after `timeout`, `.noSuchJob` if there is no
    /// such job, `.redis` if Redis could not be reached until the deadline.
    public func wait(_ id: String, queue: String? = nil, timeout: Duration) async throws -> JobRecord {
        try await wait(id, queue: queue, timeout: timeout, knownToExist: false)
    }

    /// `knownToExist`: the caller just enqueued the job into `queue` (a handle from `enqueue`), so
    /// there is no need to look for it first.
    func wait(_ id: String, queue: String?, timeout: Duration, knownToExist: Bool) async throws -> JobRecord {
        let deadline = ContinuousClock.now + timeout
        let q: String
        if knownToExist, let queue {
            q = queue
        } else {
            // Redis may be away when the wait starts, too: the first read also retries until the deadline.
            let located: (queue: String, record: JobRecord)
            do {
                located = try await locate(id, queue: queue, until: deadline)
            } catch let e as KilnError where e.code == .redis && ContinuousClock.now >= deadline {
                throw KilnError(.redis, "job \(id) has not been seen finished after \(KilnDuration.format(timeout)): Redis was unreachable all that time (\(e.message))")
            }
            if located.record.isFinal { return located.record }
            q = located.queue
        }
        let key = WaitKey(queue: q, id: id)
        let outcome: ResultWaiters<WaitKey, JobRecord>.Outcome
        do {
            outcome = try await results.wait(for: [key], until: deadline)
        } catch let e as KilnError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw KilnError.wrap(error)
        }
        if let rec = outcome.records[key], rec.isFinal { return rec }
        if outcome.missing.contains(key) {
            throw KilnError(.noSuchJob, "job \(id) disappeared while waiting (its record expired)")
        }
        if let (since, error) = results.trouble {
            throw KilnError(.redis, "job \(id) has not been seen finished after \(KilnDuration.format(timeout)): Redis has been unreachable for the last \(KilnDuration.format(ContinuousClock.now - since)) (\(Self.describe(error)))")
        }
        throw KilnError(.waitTimedOut, "job \(id) has not finished after \(KilnDuration.format(timeout)) (status: \(outcome.records[key]?.statusText ?? "expired"))")
    }

    /// How many jobs this client's waits are waiting for right now.
    /// The result subscription's connection, while it is open (see `ResultWaiters.subscriberConnection`).
    package var resultSubscription: AnyObject? { results.subscriberConnection }

    package var waitingJobs: Int { results.waitingKeys }

    static func describe(_ error: Error) -> String {
        (KilnError.wrap(error) as? KilnError)?.message ?? "\(error)"
    }
}
