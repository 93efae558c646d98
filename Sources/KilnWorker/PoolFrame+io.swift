#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Blocking frame I/O on file descriptors. Only for dedicated OS threads (pool slot threads, the
/// child's main thread), never for Swift's cooperative threads.
enum PoolFrameIO {
    /// Writes all bytes, retrying on EINTR and short writes.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(PoolFrameError) {
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n > 0 {
                    off += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    failure = n < 0 ? errno : EPIPE
                    return
                }
            }
        }
        if failure != 0 { throw .io(failure) }
    }

    /// Reads exactly `count` bytes; returns nil if the stream ends before the first byte.
    static func readExactly(_ fd: Int32, _ count: Int) throws(PoolFrameError) -> [UInt8]? {
        if count == 0 { return [] }
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        var failure: PoolFrameError?
        out.withUnsafeMutableBytes { buf in
            while got < count {
                let n = read(fd, buf.baseAddress! + got, count - got)
                if n > 0 {
                    got += n
                } else if n == 0 {
                    if got > 0 { failure = .truncated }
                    return
                } else if errno != EINTR {
                    failure = .io(errno)
                    return
                }
            }
        }
        if let failure { throw failure }
        return got == count ? out : nil
    }

    /// Reads one frame's payload; nil at a clean end of stream (between frames).
    static func readFrame(_ fd: Int32) throws(PoolFrameError) -> [UInt8]? {
        guard let header = try readExactly(fd, PoolFrame.headerLength) else { return nil }
        let n = try PoolFrame.payloadLength(header: header)
        guard let payload = try readExactly(fd, n) else { throw .truncated }
        return payload
    }
}
