import Foundation

/// A Redis connection with automatic pipelining, safe to share between many tasks.
///
/// One OS thread owns the socket. Callers queue commands and suspend; the thread takes every
/// queued request at once, appends them all, flushes once, then reads the replies in order and
/// resumes each caller. Swift's cooperative threads never block on the network.
///
/// The connection is made on first use and made again after it breaks: a request that finds no
/// connection tries to connect once and fails with `RedisError(.connectionFailed)` if it cannot.
/// Requests in flight when the connection breaks fail with `.connectionLost` (they may have run).
/// Backoff between attempts is the caller's policy (see the worker's loops).
///
/// Blocking commands (BLMOVE, BLPOP, SUBSCRIBE) must not be sent here: use `RedisBlockingConnection`.
package final class RedisConnection: Sendable {
    package let configuration: RedisConfiguration
    /// The queue and the I/O thread. The thread holds the core, not this handle, so dropping the
    /// last reference to the connection closes it and ends its thread (`deinit`).
    private let core: PipelineCore

    package init(configuration: RedisConfiguration) {
        self.configuration = configuration
        self.core = PipelineCore(configuration: configuration)
    }

    deinit { core.close() }

    /// An object the I/O thread holds while it runs: once the connection is closed (or dropped)
    /// and the thread has ended, a weak reference to it is `nil`. For tests of thread lifetime.
    package var threadToken: AnyObject? { core.threadToken }

    /// Sends one command and returns its reply. An error reply throws `RedisError(.server)`.
    @discardableResult
    package func send(_ args: [String]) async throws -> RedisValue {
        let reply = try await pipeline([args])[0]
        if case .error(let e) = reply {
            throw RedisError.reply(e, command: args.first ?? "?", address: configuration.address)
        }
        return reply
    }

    @discardableResult
    package func send(_ args: String...) async throws -> RedisValue {
        try await send(args)
    }

    /// Sends several commands back to back and returns their replies in order. Error replies are
    /// returned as `.error` values, not thrown; transport failures throw. See `checked` for
    /// callers that want error replies thrown.
    package func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        if commands.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            core.submit(commands) { continuation.resume(with: $0) }
        }
    }

    /// Queues commands now, behind everything queued before this call, and returns a handle to
    /// await their replies later: a caller can build and queue the next batch while Redis works
    /// on this one. Error replies come back as `.error` values.
    package func submit(_ commands: [[String]]) -> PendingReplies {
        let pending = PendingReplies()
        if commands.isEmpty {
            pending.complete(.success([]))
        } else {
            core.submit(commands) { pending.complete($0) }
        }
        return pending
    }

    /// The blocking form of `pipeline`, for code on a thread of its own (never call it from a
    /// Swift concurrency task: it blocks the calling thread until the replies arrive).
    package func pipelineBlocking(_ commands: [[String]]) throws -> [RedisValue] {
        if commands.isEmpty { return [] }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        core.submit(commands) { result in
            box.result = result
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    private final class ResultBox: @unchecked Sendable {
        // Written once by the I/O thread before it signals the semaphore the reader waits on.
        var result: Result<[RedisValue], Error>?
    }

    /// Fails queued requests and stops the I/O thread once it is idle.
    package func close() { core.close() }
}

/// The request queue of a `RedisConnection` and the loop of its I/O thread.
private final class PipelineCore: @unchecked Sendable {
    let configuration: RedisConfiguration

    private struct Request {
        let commands: [[String]]
        let completion: @Sendable (Result<[RedisValue], Error>) -> Void
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [Request] = []
    private var closed = false
    private var threadStarted = false
    /// Held by the I/O thread while it runs.
    private weak var liveThread: ThreadToken?

    private final class ThreadToken: Sendable {}

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    func submit(_ commands: [[String]], completion: @escaping @Sendable (Result<[RedisValue], Error>) -> Void) {
        condition.lock()
        if closed {
            condition.unlock()
            completion(.failure(RedisError(.closed, "the connection to Redis at \(configuration.address) was closed")))
            return
        }
        queue.append(Request(commands: commands, completion: completion))
        if !threadStarted {
            threadStarted = true
            let token = ThreadToken()
            liveThread = token
            let thread = Thread { [self] in withExtendedLifetime(token) { self.run() } }
            thread.name = "kiln-redis"
            thread.stackSize = 1 << 20
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    var threadToken: AnyObject? {
        condition.lock()
        defer { condition.unlock() }
        return liveThread
    }

    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        var context: HiredisContext?
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty && closed {
                condition.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()

            if context == nil {
                do {
                    context = try HiredisContext.connect(configuration)
                } catch {
                    for r in batch { r.completion(.failure(error)) }
                    continue
                }
            }
            guard let ctx = context else { continue }
            for r in batch { for c in r.commands { ctx.append(c) } }
            var index = 0
            do {
                while index < batch.count {
                    let r = batch[index]
                    var replies: [RedisValue] = []
                    replies.reserveCapacity(r.commands.count)
                    for c in r.commands { replies.append(try ctx.readReply(command: c.first ?? "?")) }
                    index += 1
                    r.completion(.success(replies))
                }
            } catch {
                // The socket is in an unknown state: drop it and fail everything not yet answered.
                context = nil
                for r in batch[index...] { r.completion(.failure(error)) }
            }
        }
    }
}

extension [RedisValue] {
    /// Throws the first error reply (classified by `RedisError.reply`); returns the replies otherwise.
    package func checked(command: String, address: String) throws -> [RedisValue] {
        for v in self {
            if case .error(let e) = v { throw RedisError.reply(e, command: command, address: address) }
        }
        return self
    }
}

/// Replies to commands queued with `RedisConnection.submit`, awaited later.
package final class PendingReplies: @unchecked Sendable {
    private let lock = NSLock()
    // Guarded by `lock`; one of them is set, at most once each.
    private var result: Result<[RedisValue], Error>?
    private var waiter: CheckedContinuation<[RedisValue], Error>?

    fileprivate func complete(_ r: Result<[RedisValue], Error>) {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.resume(with: r)
        } else {
            result = r
            lock.unlock()
        }
    }

    /// The replies, once they arrived (or the transport error). Await it once.
    package func value() async throws -> [RedisValue] {
        try await withCheckedThrowingContinuation { c in
            lock.lock()
            if let r = result {
                lock.unlock()
                c.resume(with: r)
            } else {
                waiter = c
                lock.unlock()
            }
        }
    }
}
