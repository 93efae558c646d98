#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Kiln
import Logging
import Synchronization

/// Child mode of the worker executable: a ``ProcessPool`` re-runs its own executable with
/// `KILN_POOL_CHILD=1`, and the executable's `main` must call ``runIfChild(registry:)`` early,
/// before doing anything else, so that the child serves pool jobs instead of starting a worker.
///
/// A child reads request frames on fd 3, runs each job with the registry's handler and writes the
/// response frame on fd 4. Before it starts a job it reads whatever else is already in the pipe:
/// if that includes a drop of this job (the pool withdrew a prefetched job), it answers
/// `dropped` instead of running it. It exits when fd 3 reaches end of file, or when its parent
/// process (`KILN_POOL_PARENT`) goes away.
public enum PoolChild {
    /// The descriptor requests arrive on.
    static let requestFD: Int32 = 3
    /// The descriptor responses are written to.
    static let responseFD: Int32 = 4

    /// Whether this process was started as a pool child (`KILN_POOL_CHILD=1`).
    public static var isChild: Bool {
        guard let v = getenv("KILN_POOL_CHILD") else { return false }
        return String(cString: v) == "1"
    }

    /// In a pool child, serves jobs until the parent closes the request pipe, then exits the
    /// process; never returns. In any other process, returns immediately.
    public static func runIfChild(registry: JobRegistry) {
        guard isChild else { return }
        signal(SIGPIPE, SIG_IGN)
        watchParent()
        let logger = Logger(label: "kiln.pool-child")
        var inbox = PoolChildInbox(fd: requestFD)
        while true {
            let request: PoolRequest
            do {
                guard let r = try inbox.next() else { exit(0) }
                request = r
            } catch {
                // A broken request stream: nothing sensible left to do.
                logger.error("pool child: unreadable request: \(error)")
                exit(70)
            }
            // A drop for a job that already ran (it started before the drop arrived): its outcome
            // was its answer.
            guard case .run(let job) = request else { continue }
            let outcome: PoolOutcome
            do {
                // Taking a prefetched job: a drop for it may already wait behind it in the pipe.
                outcome = try inbox.takeDrop(for: job) ? .dropped : run(job, registry: registry, logger: logger)
            } catch {
                logger.error("pool child: unreadable request: \(error)")
                exit(70)
            }
            do {
                try PoolFrameIO.writeAll(responseFD, PoolFrame.encode(outcome))
            } catch {
                // The parent is gone or stopped listening.
                exit(0)
            }
        }
    }

    /// Runs one job in this process and describes how it ended.
    static func run(_ job: PoolJob, registry: JobRegistry, logger: Logger) -> PoolOutcome {
        guard let handler = registry.handler(for: job.type) else {
            return .failed(type: "unknown_type", message: "no handler registered for job type '\(SafeText.escaped(job.type))'", retryable: false)
        }
        let ctx = JobContext(
            id: job.id, type: job.type, queue: job.queue, attempt: job.attempt, maxAttempts: job.maxAttempts,
            timeout: .milliseconds(job.timeoutMs), logger: logger)
        let result: Result<String, any Error>
        switch handler {
        case .cpu(let body):
            result = Result { try body(job.payload, ctx) }
        case .io(let body):
            result = runBlocking { try await body(job.payload, ctx) }
        }
        switch result {
        case .success(let text):
            return .succeeded(text)
        case .failure(let failure as JobFailure):
            return .failed(type: failure.type, message: failure.message, retryable: failure.retryable)
        case .failure(let error):
            return .failed(type: "error", message: String(describing: error), retryable: true)
        }
    }

    /// Runs an async body to completion, blocking the calling (non-cooperative) thread.
    static func runBlocking(_ body: @escaping @Sendable () async throws -> String) -> Result<String, any Error> {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let r: Result<String, any Error>
            do { r = .success(try await body()) } catch { r = .failure(error) }
            box.value.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return box.value.withLock { $0 }!
    }

    final class ResultBox: Sendable {
        let value = Mutex<Result<String, any Error>?>(nil)
    }

    /// Exits when the parent named by `KILN_POOL_PARENT` is no longer our parent (it died and we
    /// were re-parented), checking every 200 ms on a background thread.
    static func watchParent() {
        let expected: pid_t
        if let v = getenv("KILN_POOL_PARENT"), let pid = pid_t(String(cString: v)) {
            expected = pid
        } else {
            expected = getppid()
        }
        if getppid() != expected { _exit(0) }
        let thread = Thread {
            while true {
                usleep(200_000)
                if getppid() != expected { _exit(0) }
            }
        }
        thread.name = "kiln-pool-parent-watch"
        thread.start()
    }
}
