/// Where a job's work runs: on the worker's async loop, or in its pool of child processes.
public enum JobKind: String, Sendable, Codable, CaseIterable {
    case io
    case cpu
}

/// A job's status, as stored in its record.
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    case queued, running, retrying, succeeded, failed
    case timedOut = "timed_out"
    case cancelled, dead

    /// Whether the job has finished for good.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .timedOut, .cancelled, .dead: return true
        case .queued, .running, .retrying: return false
        }
    }
}
