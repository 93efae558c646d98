import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A connection for one blocking command at a time (BLMOVE, BLPOP) or a subscription.
///
/// The command runs on the connection's own thread, which waits with `poll(2)` on the socket and
/// on a self-pipe. Cancelling the calling task writes to the pipe: the thread drops the
/// connection (the server then forgets the blocked client) and the call throws
/// `CancellationError` at once. The next call connects again.
package final class RedisBlockingConnection: @unchecked Sendable {
    package let configuration: RedisConfiguration

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: (commands: [[String]], blockFor: Duration?, continuation: CheckedContinuation<[RedisValue], Error>)?
    private var cancelRequested = false
    private var closed = false
    private var threadStarted = false
    private var messageHandler: (@Sendable (RedisValue) -> Void)?
    private var confirmHandler: (@Sendable (String) -> Void)?
    /// A self-pipe: writing a byte to `wakeWrite` wakes the thread's `poll`.
    private let wakeFD: Int32
    private let wakeWrite: Int32

    package init(configuration: RedisConfiguration) {
        self.configuration = configuration
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeFD = fds[0]
        self.wakeWrite = fds[1]
    }

    deinit {
        close()
        Glibc.close(wakeFD)
        Glibc.close(wakeWrite)
    }

    /// Stops the thread; a command in flight throws `CancellationError`.
    package func close() {
        condition.lock()
        closed = true
        cancelRequested = true
        condition.signal()
        condition.unlock()
        wake()
    }

    private func wake() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWrite, &one, 1)
    }

    /// Sends a blocking command and waits for its reply. `blockFor` is how long the command may
    /// block on the server (its own timeout argument); with the configuration's command timeout
    /// added, that bounds the wait: a server that has gone silent fails with `.connectionLost`.
    /// `nil` waits as long as it takes. Error replies throw `RedisError(.server)`.
    package func send(_ args: [String], blockFor: Duration? = nil) async throws -> RedisValue {
        let reply = try await pipeline([args], blockFor: blockFor)[0]
        if case .error(let e) = reply {
            throw RedisError.reply(e, command: args.first ?? "?", address: configuration.address)
        }
        return reply
    }

    /// Sends a blocking command and the commands after it back to back, and returns every reply
    /// in order (error replies as `.error` values). The server runs the later commands once the
    /// first one returns, so a read after a wake-up costs no extra round trip.
    package func pipeline(_ commands: [[String]], blockFor: Duration? = nil) async throws -> [RedisValue] {
        precondition(!commands.isEmpty)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[RedisValue], Error>) in
                enqueue(commands, blockFor, continuation)
            }
        } onCancel: {
            requestCancel()
        }
    }

    /// Subscribes to channels and calls `handler` with each `message` push (as the array
    /// `["message", channel, payload]`) until the task is cancelled. Reconnects and
    /// resubscribes after the connection breaks, calling `onReconnect` each time it comes back
    /// (messages sent while it was down are lost: callers keep a durable fallback).
    /// `onConfirm` gets each channel name as Redis confirms the subscription to it (after every
    /// reconnect too): from then on, nothing published on that channel is missed until the next
    /// `onReconnect`. `onError` sees each failure before the retry (a refusal such as `NOPERM`
    /// will not go away by retrying: the caller may want to give up).
    package func subscribe(
        _ channels: [String],
        onReconnect: @escaping @Sendable () -> Void = {},
        onConfirm: @escaping @Sendable (String) -> Void = { _ in },
        onError: @escaping @Sendable (Error) -> Void = { _ in },
        handler: @escaping @Sendable (RedisValue) -> Void
    ) async throws {
        setHandler(handler, confirm: onConfirm)
        defer { setHandler(nil, confirm: nil) }
        var backoff = Backoff(initial: .milliseconds(50), max: .seconds(2))
        var first = true
        while !Task.isCancelled {
            do {
                if !first { onReconnect() }
                first = false
                _ = try await send(["SUBSCRIBE"] + channels)
                backoff.reset()
            } catch is CancellationError {
                return
            } catch {
                onError(error)
                try? await Task.sleep(for: backoff.next())
            }
        }
    }

    private func startThreadLocked() {
        if threadStarted { return }
        threadStarted = true
        let thread = Thread { [self] in self.run() }
        thread.name = "kiln-redis-blocking"
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run() {
        var context: HiredisContext?
        while true {
            condition.lock()
            while pending == nil && !closed { condition.wait() }
            guard let (commands, blockFor, continuation) = pending else {
                condition.unlock()
                return
            }
            condition.unlock()
            drainWakePipe()

            let result: Result<[RedisValue], Error>
            do {
                if context == nil { context = try HiredisContext.connect(configuration) }
                let limit = blockFor.map { ContinuousClock.now + $0 + configuration.commandTimeout }
                result = .success(try execute(commands, on: context!, deadline: limit))
            } catch {
                result = .failure(error)
                context = nil  // unknown state, or dropped on purpose to unblock the server side
            }
            condition.lock()
            pending = nil
            cancelRequested = false
            condition.unlock()
            continuation.resume(with: result)
        }
    }

    private func drainWakePipe() {
        var buf = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakeFD, &buf, 64) > 0 {}
    }

    private func setHandler(_ h: (@Sendable (RedisValue) -> Void)?, confirm: (@Sendable (String) -> Void)?) {
        condition.lock()
        messageHandler = h
        confirmHandler = confirm
        condition.unlock()
    }

    private func enqueue(_ commands: [[String]], _ blockFor: Duration?, _ continuation: CheckedContinuation<[RedisValue], Error>) {
        condition.lock()
        if closed {
            condition.unlock()
            continuation.resume(throwing: CancellationError())
            return
        }
        precondition(pending == nil, "RedisBlockingConnection runs one command at a time")
        pending = (commands, blockFor, continuation)
        cancelRequested = Task.isCancelled
        startThreadLocked()
        condition.signal()
        condition.unlock()
    }

    private func requestCancel() {
        condition.lock()
        cancelRequested = true
        condition.unlock()
        wake()
    }

    private func isCancelRequested() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelRequested
    }

    private func execute(_ commands: [[String]], on ctx: HiredisContext, deadline: ContinuousClock.Instant?) throws -> [RedisValue] {
        let name = commands[0].first ?? "?"
        let subscribing = name.uppercased() == "SUBSCRIBE"
        for c in commands { ctx.append(c) }
        try ctx.flush(command: name)
        var replies: [RedisValue] = []
        while true {
            while let reply = try ctx.bufferedReply(command: name) {
                if !subscribing {
                    replies.append(reply)
                    if replies.count == commands.count { return replies }
                    continue
                }
                if case .error = reply { return [reply] }
                // Messages go to the handler, confirmations to the confirm handler; pongs need nothing.
                let kind = reply.array.first?.string
                if kind == "message" {
                    condition.lock()
                    let handler = messageHandler
                    condition.unlock()
                    handler?(reply)
                } else if kind == "subscribe", let channel = reply.array.dropFirst().first?.string {
                    condition.lock()
                    let confirm = confirmHandler
                    condition.unlock()
                    confirm?(channel)
                }
            }
            if isCancelRequested() { throw CancellationError() }
            var fds = [pollfd(fd: ctx.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            var waitMs: Int32 = subscribing ? 15_000 : -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero {
                    throw RedisError(.connectionLost, "lost connection to Redis at \(configuration.address) during \(name): no reply within \(HiredisContext.format(configuration.commandTimeout)) past the block time")
                }
                waitMs = Int32(min(Int64(Int32.max), max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            }
            let n = poll(&fds, 2, waitMs)
            if n < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 {
                drainWakePipe()
                if isCancelRequested() { throw CancellationError() }
            }
            if fds[0].revents != 0 {
                try ctx.readIntoBuffer(command: name)
            } else if n == 0 && subscribing {
                // Idle subscription: make sure the server is still there.
                ctx.append(["PING"])
                try ctx.flush(command: "PING")
            }
        }
    }
}
