import CHiredis

/// Fuzzing entry point for the reply path: feeds raw bytes to a hiredis reader (the same parser a
/// connection uses) and converts every complete reply with `HiredisContext.convert`, exactly as
/// `readReply` does. Not for production use; see `Sources/KilnFuzz` and `docs/testing.md`.
public enum RESPFuzzing {
    /// The replies in `bytes`, in order. Stops at the first protocol error or incomplete reply.
    public static func parse(_ bytes: [UInt8]) -> [RedisValue] {
        guard let reader = redisReaderCreate() else { return [] }
        defer { redisReaderFree(reader) }
        let fed = bytes.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        guard fed == REDIS_OK else { return [] }
        var out: [RedisValue] = []
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &raw) == REDIS_OK, let raw else { break }
            defer { freeReplyObject(raw) }
            out.append(HiredisContext.convert(raw.assumingMemoryBound(to: redisReply.self)))
        }
        return out
    }
}
