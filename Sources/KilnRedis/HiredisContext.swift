import CHiredis
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one type that holds hiredis' raw pointers: a synchronous connection used by exactly one
/// thread at a time (the owning connection's I/O thread). Everything above it is safe Swift.
package final class HiredisContext {
    private let ctx: UnsafeMutablePointer<redisContext>
    let config: RedisConfiguration

    private init(ctx: UnsafeMutablePointer<redisContext>, config: RedisConfiguration) {
        self.ctx = ctx
        self.config = config
    }

    deinit { redisFree(ctx) }

    /// Connects, authenticates and selects the database.
    static func connect(_ config: RedisConfiguration) throws -> HiredisContext {
        let tv = timeval(config.connectTimeout)
        let raw: UnsafeMutablePointer<redisContext>?
        switch config.endpoint {
        case .tcp(let host, let port): raw = redisConnectWithTimeout(host, Int32(port), tv)
        case .unix(let path): raw = redisConnectUnixWithTimeout(path, tv)
        }
        guard let raw else {
            throw RedisError(.connectionFailed, "cannot connect to Redis at \(config.address): out of memory")
        }
        let context = HiredisContext(ctx: raw, config: config)
        if raw.pointee.err != 0 {
            throw RedisError(.connectionFailed, "cannot connect to Redis at \(config.address): \(context.errorString)")
        }
        // Child processes (the worker's CPU pool) must never inherit a Redis connection.
        _ = fcntl(raw.pointee.fd, F_SETFD, FD_CLOEXEC)
        _ = redisSetTimeout(raw, timeval(config.commandTimeout))
        if case .tcp = config.endpoint { _ = redisEnableKeepAlive(raw) }
        if let password = config.password {
            var args = ["AUTH"]
            if let user = config.username { args.append(user) }
            args.append(password)
            let reply = try context.command(args, name: "AUTH")
            if case .error(let e) = reply {
                let why = e.contains("without any password") || e.contains("no password is set")
                    ? "the server has no password set, but the URL gives one"
                    : "check the user name and password"
                throw RedisError(.authenticationFailed, "authentication failed for Redis at \(config.address) (\(why))")
            }
        }
        if config.database != 0 {
            let reply = try context.command(["SELECT", String(config.database)], name: "SELECT")
            if case .error(let e) = reply {
                throw RedisError(.server, "Redis at \(config.address) refused SELECT \(config.database): \(e)")
            }
        }
        return context
    }

    var fd: Int32 { ctx.pointee.fd }

    var errorString: String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    func setTimeout(_ d: Duration) { _ = redisSetTimeout(ctx, timeval(d)) }

    /// Appends one command to the output buffer (binary safe, through `redisAppendCommandArgv`).
    func append(_ args: [String]) {
        var total = 0
        var lengths = [Int](repeating: 0, count: args.count)
        for (i, a) in args.enumerated() {
            lengths[i] = a.utf8.count
            total += lengths[i]
        }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
        defer { buffer.deallocate() }
        var argv = [UnsafePointer<CChar>?](repeating: nil, count: args.count)
        var offset = 0
        for (i, a) in args.enumerated() {
            let start = buffer + offset
            var s = a
            s.withUTF8 { utf8 in
                utf8.withMemoryRebound(to: CChar.self) { src in
                    if let base = src.baseAddress { start.update(from: base, count: src.count) }
                }
            }
            argv[i] = UnsafePointer(start)
            offset += lengths[i]
        }
        _ = argv.withUnsafeMutableBufferPointer { argvBuf in
            lengths.withUnsafeBufferPointer { lenBuf in
                redisAppendCommandArgv(ctx, Int32(args.count), argvBuf.baseAddress, lenBuf.baseAddress)
            }
        }
    }

    /// Reads the next reply, flushing pending output first; blocks up to the command timeout.
    func readReply(command: String) throws -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(ctx, &raw) != REDIS_OK {
            throw ioError(command: command)
        }
        guard let raw else { throw ioError(command: command) }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Runs one command synchronously.
    func command(_ args: [String], name: String? = nil) throws -> RedisValue {
        append(args)
        return try readReply(command: name ?? args.first ?? "?")
    }

    /// Writes all pending output without waiting for replies.
    func flush(command: String) throws {
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(ctx, &done) != REDIS_OK { throw ioError(command: command) }
        }
    }

    /// A reply already in hiredis' read buffer, without touching the socket.
    func bufferedReply(command: String) throws -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        if redisGetReplyFromReader(ctx, &raw) != REDIS_OK { throw ioError(command: command) }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Reads whatever the socket has into hiredis' buffer (call after poll says readable).
    func readIntoBuffer(command: String) throws {
        if redisBufferRead(ctx) != REDIS_OK { throw ioError(command: command) }
    }

    private func ioError(command: String) -> RedisError {
        let err = ctx.pointee.err
        var text = errorString
        if text.contains("temporarily unavailable") || text.contains("timed out") {
            text = "no reply within \(Self.format(config.commandTimeout))"
        }
        if err == REDIS_ERR_EOF || text.isEmpty { text = "server closed the connection" }
        return RedisError(.connectionLost, "lost connection to Redis at \(config.address) during \(command): \(text)")
    }

    static func format(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    package static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let reply = r.pointee
        switch Int32(reply.type) {
        case REDIS_REPLY_STRING:
            return bulk(reply.str, reply.len)
        case REDIS_REPLY_STATUS:
            return .status(string(reply.str, reply.len))
        case REDIS_REPLY_ERROR:
            return .error(string(reply.str, reply.len))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(reply.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(Int(reply.elements))
            for i in 0..<Int(reply.elements) {
                if let child = reply.element[i] { items.append(convert(child)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    /// A bulk string: text if it is valid UTF-8 (validated while copied, as `String(decoding:)`
    /// would), else its bytes, never text with replacement characters (a payload must not
    /// silently become another one).
    private static func bulk(_ p: UnsafeMutablePointer<CChar>?, _ len: Int) -> RedisValue {
        guard let p, len > 0 else { return .bulk("") }
        let buf = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: len)
        if let s = String(validating: buf, as: UTF8.self) { return .bulk(s) }
        return .bytes(Array(buf))
    }

    /// Status and error text (Redis's own words): decoded with replacement characters.
    private static func string(_ p: UnsafeMutablePointer<CChar>?, _ len: Int) -> String {
        guard let p, len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }
}

extension timeval {
    init(_ d: Duration) {
        let (s, atto) = d.components
        self.init(tv_sec: Int(s), tv_usec: Int(atto / 1_000_000_000_000))
    }
}
