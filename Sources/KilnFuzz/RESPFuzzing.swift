import CHiredis
import KilnRedis

/// Fuzzing entry point for the reply path: feeds raw bytes to a hiredis reader (the same parser a
/// connection uses) and converts every complete reply with `HiredisContext.convert`, exactly as
/// `readReply` does. Used by the fuzz targets and FuzzRegressionTests (docs/testing.md).
package enum RESPFuzzing {
    /// The replies in `bytes`, in order, fed to the reader `chunk` bytes at a time and drained
    /// after every feed (as a connection does between reads). Stops at the first protocol error.
    package static func parse(_ bytes: [UInt8], chunk: Int = .max) -> [RedisValue] {
        guard let reader = redisReaderCreate() else { return [] }
        defer { redisReaderFree(reader) }
        var out: [RedisValue] = []
        var start = 0
        repeat {
            let end = start + min(max(chunk, 1), bytes.count - start)
            let fed = bytes[start..<end].withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
            }
            guard fed == REDIS_OK else { return out }
            while true {
                var raw: UnsafeMutableRawPointer?
                guard redisReaderGetReply(reader, &raw) == REDIS_OK else { return out }
                guard let raw else { break }
                defer { freeReplyObject(raw) }
                out.append(HiredisContext.convert(raw.assumingMemoryBound(to: redisReply.self)))
            }
            start = end
        } while start < bytes.count
        return out
    }
}
