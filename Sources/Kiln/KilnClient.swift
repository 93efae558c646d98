import Foundation
import KilnRedis
import Logging

/// The producer side of Kiln: enqueue jobs, read and wait for their results, cancel them.
///
/// ```swift
/// let kiln = try KilnClient(options: .init(redis: RedisConfiguration(url: "redis://127.0.0.1:6379")))
/// let job = try await kiln.enqueue("echo", payload: ["hello": "world"])
/// let value = try await job.value(timeout: .seconds(5))
/// ```
/// One client is safe to share across tasks; its commands are pipelined on one connection.
public final class KilnClient: Sendable {
    public let options: KilnClientOptions
    public let keys: KeySchema
    public let connection: RedisConnection
    public let scripts: ScriptRunner
    let waiters: BlockingConnectionPool
    let logger: Logger

    public init(options: KilnClientOptions = KilnClientOptions(), logger: Logger = Logger(label: "kiln.client")) throws {
        guard KeySchema.isValidPrefix(options.prefix) else {
            throw KilnError(.invalidInput, "invalid key prefix '\(SafeText.escaped(String(options.prefix.prefix(70))))': use 1-64 printable characters without braces or a trailing colon")
        }
        self.options = options
        self.keys = KeySchema(prefix: options.prefix)
        self.connection = RedisConnection(configuration: options.redis)
        self.scripts = ScriptRunner(connection: connection)
        self.waiters = BlockingConnectionPool(configuration: options.redis)
        self.logger = logger
    }

    /// Closes the client's connections.
    public func close() {
        connection.close()
        waiters.close()
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: enqueue

    /// Enqueues a job whose payload is JSON text. Returns a handle (a future) for its result.
    public func enqueue<Result: Decodable & Sendable>(
        _ type: String, json payload: String = "null", result: Result.Type = JSONValue.self, options: JobOptions = JobOptions()
    ) async throws -> JobHandle<Result> {
        let r = EnqueueRequest(type: type, payload: payload, options: options)
        let id = try await enqueueBatch([r])[0]
        return JobHandle(id: id, queue: options.queue, client: self, fresh: true)
    }

    /// Enqueues a job with a typed payload, and a typed result for its handle.
    public func enqueue<Payload: Encodable, Result: Decodable & Sendable>(
        _ type: String, payload: Payload, result: Result.Type = JSONValue.self, options: JobOptions = JobOptions()
    ) async throws -> JobHandle<Result> {
        let text: String
        do { text = try JSONText.encode(payload) } catch {
            throw KilnError(.invalidInput, "payload for '\(type)' could not be encoded as JSON: \(error)")
        }
        let id = try await enqueueBatch([EnqueueRequest(type: type, payload: text, options: options)])[0]
        return JobHandle(id: id, queue: options.queue, client: self, fresh: true)
    }

    /// Jobs per `enqueue_many` call: each call is atomic and blocks Redis while it runs, so a
    /// large batch goes as several calls in one pipeline.
    static let enqueueChunk = 500

    /// Enqueues many jobs in one pipeline and returns their ids in order. Every request is
    /// checked first: if any is invalid nothing is written and the error names its position.
    /// Jobs of one queue are written by `enqueue_many` calls of up to 500 jobs, each all or
    /// nothing; an id that already exists refuses its whole call.
    public func enqueueBatch(_ requests: [EnqueueRequest]) async throws -> [String] {
        if requests.isEmpty { return [] }
        var ids: [String] = []
        ids.reserveCapacity(requests.count)
        // Positions of the requests of each queue, in order.
        var byQueue: [String: [Int]] = [:]
        var queueOrder: [String] = []
        for (i, r) in requests.enumerated() {
            do { try validate(r) } catch let e as KilnError where requests.count > 1 {
                throw KilnError(e.code, "job \(i + 1): \(e.message)")
            }
            ids.append(r.options.id ?? JobID.make())
            let q = r.options.queue
            if byQueue[q] == nil { queueOrder.append(q) }
            byQueue[q, default: []].append(i)
        }
        try await checkChosenIDs(requests, ids: ids)
        let now = String(Self.nowMs())
        var chunks: [(queue: String, positions: ArraySlice<Int>)] = []
        for q in queueOrder {
            let positions = byQueue[q]!
            for start in stride(from: 0, to: positions.count, by: Self.enqueueChunk) {
                chunks.append((q, positions[start..<min(positions.count, start + Self.enqueueChunk)]))
            }
        }
        func call(_ chunk: (queue: String, positions: ArraySlice<Int>)) -> (script: KilnScripts.Script, keys: [String], args: [String]) {
            let q = chunk.queue
            var args: [String] = [keys.queuePrefix(q), q, now]
            args.reserveCapacity(3 + chunk.positions.count * 7)
            for i in chunk.positions {
                let r = requests[i]
                let kind = r.options.kind ?? options.knownKinds[r.type] ?? .io
                args.append(ids[i])
                args.append(r.type)
                args.append(kind.rawValue)
                args.append(r.payload)
                args.append(String(r.options.retries + 1))
                args.append(String(KilnDuration.milliseconds(r.options.timeout)))
                args.append(String(KilnDuration.milliseconds(r.options.resultTTL)))
            }
            return (KilnScripts.enqueueMany, [keys.pending(q, .io), keys.pending(q, .cpu)], args)
        }
        // Register queues first: a registered empty queue is harmless, an unregistered job is not findable.
        let register = ["SADD", keys.queues] + queueOrder.sorted()
        var tries = 0
        let replies = try await withRetry {
            tries += 1
            // Each call is queued as soon as it is built, so Redis runs one while the next is
            // being built; every call goes behind the SADD on the same connection.
            let sha = try await scripts.sha(KilnScripts.enqueueMany)
            var pending: [PendingReplies] = []
            pending.reserveCapacity(chunks.count)
            for (n, chunk) in chunks.enumerated() {
                let c = call(chunk)
                let command = scripts.command(c.script, sha: sha, keys: c.keys, args: c.args)
                pending.append(connection.submit(n == 0 ? [register, command] : [command]))
            }
            var replies: [RedisValue] = []
            replies.reserveCapacity(chunks.count + 1)
            for p in pending { replies += try await p.value() }
            // A server without the script (restarted, SCRIPT FLUSH): load it and run those calls again.
            for (n, chunk) in chunks.enumerated() {
                if case .error(let e) = replies[n + 1], e.hasPrefix("NOSCRIPT") {
                    replies[n + 1] = try await scripts.runPipelined([call(chunk)])[0]
                }
            }
            // "Not now" replies (LOADING after a restart, READONLY in a failover) are retried.
            for r in replies {
                if case .error(let e) = r, RedisError.reply(e, command: "", address: "").isTransient {
                    throw RedisError.reply(e, command: "enqueue", address: options.redis.address)
                }
            }
            return replies
        }
        for ((queue, chunk), reply) in zip(chunks, replies.dropFirst(1)) {
            if case .error(let e) = reply {
                throw KilnError(.redis, "Redis at \(options.redis.address) refused to enqueue job \(chunk.first! + 1): \(e)")
            }
            let r = reply.array.map { $0.int ?? -1 }
            guard r.count == 2, r[0] >= 0, r[0] <= chunk.count else {
                throw KilnError(.protocolViolation, "unexpected reply to enqueue: \(reply)")
            }
            if r[0] == 0 { continue }
            // After a dropped connection, every id of the call may exist because our own earlier
            // try wrote them all (the call is atomic) before the reply was lost.
            if tries > 1, r[1] == chunk.count,
               try await writtenByEarlierTry(chunk, of: requests, ids: ids, queue: queue, now: now) { continue }
            let i = chunk[chunk.startIndex + r[0] - 1]
            let position = requests.count > 1 ? "job \(i + 1): " : ""
            throw KilnError(.duplicateJob, "\(position)a job with id '\(ids[i])' already exists in queue '\(requests[i].options.queue)'")
        }
        return ids
    }

    /// Caller-chosen ids must be new, and unique within the batch: checked before anything is
    /// written, so a batch is refused whole. (A producer racing to write the same id between this
    /// check and the write is still refused by the enqueue script, after the jobs before it.)
    private func checkChosenIDs(_ requests: [EnqueueRequest], ids: [String]) async throws {
        let chosen = requests.indices.filter { requests[$0].options.id != nil }
        if chosen.isEmpty { return }
        var seen = Set<String>()
        for i in chosen where !seen.insert("\(requests[i].options.queue) \(ids[i])").inserted {
            throw KilnError(.duplicateJob, "job \(i + 1): the id '\(ids[i])' appears twice in the batch")
        }
        let replies: [RedisValue]
        do {
            replies = try await connection.pipeline(chosen.map { ["EXISTS", keys.job(requests[$0].options.queue, ids[$0])] })
        } catch { throw KilnError.wrap(error) }
        for (i, reply) in zip(chosen, replies) where reply.int == 1 {
            let position = requests.count > 1 ? "job \(i + 1): " : ""
            throw KilnError(.duplicateJob, "\(position)a job with id '\(ids[i])' already exists in queue '\(requests[i].options.queue)'")
        }
    }

    /// Checks one request against the limits; throws `KilnError(.invalidInput/.tooLarge)`.
    public func validate(_ r: EnqueueRequest) throws {
        try r.check(maxPayloadBytes: options.maxPayloadBytes)
    }

    /// Runs `body`, retrying network failures as the retry policy says; wraps Redis errors.
    /// With a `deadline` (a waiter's), network failures are retried until then instead, with a
    /// pause that doubles up to 1 s: a waiter rides out a Redis restart like a worker does.
    func withRetry<T>(until deadline: ContinuousClock.Instant? = nil, _ body: () async throws -> T) async throws -> T {
        var wait = options.retry.backoff
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch let e as RedisError where e.isTransient && attempt < options.retry.attempts && deadline == nil {
                logger.debug("retrying after a network error: \(e.message)")
                try await Task.sleep(for: wait)
                wait = wait * 2
            } catch let e as RedisError where e.isTransient && deadline.map({ ContinuousClock.now < $0 }) == true {
                logger.debug("retrying until the wait's deadline after a network error: \(e.message)")
                try await Task.sleep(for: min(max(wait, .milliseconds(50)), deadline! - ContinuousClock.now))
                wait = min(wait * 2, .seconds(1))
            } catch {
                throw KilnError.wrap(error)
            }
            attempt += 1
        }
    }

    // MARK: reading

    /// The queue a job lives in: `queue` if given, else found by looking in every known queue.
    /// Throws `KilnError(.noSuchJob)`.
    public func locate(_ id: String, queue: String? = nil) async throws -> (queue: String, record: JobRecord) {
        try await locate(id, queue: queue, until: nil)
    }

    /// `locate`, retrying network failures until `deadline` when there is one.
    func locate(_ id: String, queue: String?, until deadline: ContinuousClock.Instant?) async throws -> (queue: String, record: JobRecord) {
        guard JobID.isValid(id) else {
            throw KilnError(.invalidInput, "invalid job id '\(SafeText.escaped(String(id.prefix(40))))': use 1-128 printable characters without spaces, braces or colons")
        }
        if let queue { try KeySchema.checkQueueName(queue) }
        let found: (String, JobRecord)? = try await withRetry(until: deadline) {
            let candidates: [String]
            if let queue { candidates = [queue] } else {
                candidates = try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
            }
            // An error reply (LOADING after a restart) is not "no such job": throw it (and retry).
            let replies = try await connection.pipeline(candidates.map { ["HGETALL", keys.job($0, id)] })
                .checked(command: "HGETALL", address: options.redis.address)
            for (q, reply) in zip(candidates, replies) {
                if let rec = JobRecord(hash: reply, queue: q) { return (q, rec) }
            }
            return nil
        }
        if let found { return found }
        throw KilnError(.noSuchJob, "no job with id \(id)\(queue.map { " in queue '\($0)'" } ?? "") (never enqueued, or its record expired)")
    }

    /// The job's current record. Throws `KilnError(.noSuchJob)`.
    public func record(_ id: String, queue: String? = nil) async throws -> JobRecord {
        try await locate(id, queue: queue).record
    }

    /// Per-queue counts: queued (both kinds), running, retrying (scheduled) and dead.
    public func queueStats() async throws -> [QueueStats] {
        try await withRetry {
            let names = try await connection.send(["SMEMBERS", keys.queues]).array.compactMap(\.string).sorted()
            var cmds: [[String]] = []
            for q in names {
                cmds.append(["LLEN", keys.pending(q, .io)])
                cmds.append(["LLEN", keys.pending(q, .cpu)])
                cmds.append(["ZCARD", keys.running(q)])
                cmds.append(["ZCARD", keys.scheduled(q)])
                cmds.append(["ZCARD", keys.dead(q)])
            }
            let r = try await connection.pipeline(cmds).checked(command: "LLEN/ZCARD", address: options.redis.address)
            return names.enumerated().map { i, q in
                let b = i * 5
                return QueueStats(name: q, queued: (r[b].int ?? 0) + (r[b + 1].int ?? 0), running: r[b + 2].int ?? 0,
                                  retrying: r[b + 3].int ?? 0, dead: r[b + 4].int ?? 0)
            }
        }
    }
}

/// Counts for one queue.
public struct QueueStats: Sendable, Equatable {
    public var name: String
    public var queued: Int
    public var running: Int
    public var retrying: Int
    public var dead: Int

    public init(name: String, queued: Int, running: Int, retrying: Int, dead: Int) {
        self.name = name
        self.queued = queued
        self.running = running
        self.retrying = retrying
        self.dead = dead
    }

    public var json: String {
        "{\"queue\":\(JSONText.quote(name)),\"queued\":\(queued),\"running\":\(running),\"retrying\":\(retrying),\"dead\":\(dead)}"
    }
}
