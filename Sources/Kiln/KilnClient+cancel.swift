import KilnRedis

/// What `KilnClient.cancel` did.
public enum CancelOutcome: Sendable, Equatable {
    /// The job was queued or waiting to retry: removed, it will never run.
    case cancelled
    /// The job was running; the worker stopped it and it ended in this status (usually
    /// `cancelled`; `succeeded` if it finished first).
    case stopped(JobStatus)
    /// The job was running; the cancel is recorded but the job had not finished within the wait.
    case stopping
    /// The job had already finished in this status; nothing changed.
    case alreadyFinished(String)

    /// The status word to print.
    public var statusText: String {
        switch self {
        case .cancelled: return "cancelled"
        case .stopped(let s): return s.rawValue
        case .stopping: return "cancelling"
        case .alreadyFinished(let s): return s
        }
    }
}

extension KilnClient {
    /// Cancels a job. A queued or delayed-retry job is removed and never runs. A running job is
    /// marked (durably, in its record) and its worker is told at once through the cancel channel;
    /// this call then waits up to `wait` for it to stop. A finished job is left as it is.
    /// Throws `KilnError(.noSuchJob)`.
    public func cancel(_ id: String, queue: String? = nil, wait: Duration = .seconds(10)) async throws -> CancelOutcome {
        let (q, _) = try await locate(id, queue: queue)
        let reply: CancelReply
        do {
            reply = try await store.cancel(queue: q, id: id, now: KilnClock.nowMs())
        } catch { throw KilnError.wrap(error) }
        switch reply {
        case .cancelled: return .cancelled
        case .missing: throw KilnError(.noSuchJob, "no job with id \(id) (its record expired)")
        case .running:
            if wait <= .zero { return .stopping }
            do {
                let rec = try await self.wait(id, queue: q, timeout: wait)
                return .stopped(rec.status ?? .cancelled)
            } catch let e as KilnError where e.code == .waitTimedOut {
                return .stopping
            }
        case .finished(let status): return .alreadyFinished(status)
        }
    }
}
