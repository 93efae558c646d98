import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 (kernel-chosen port) for tests: a thread that answers
/// every request with `200 OK` and the body `hello`, then closes the connection. It is bounded:
/// it serves at most `maxRequests` requests, and stops at `stop()` or after
/// `lifetime`, whichever comes first.
final class LoopbackHTTPServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private var served = 0

    static let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"

    init(maxRequests: Int = 4, lifetime: Duration = .seconds(30)) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 8) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("bind/listen on 127.0.0.1: \(message)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        let deadline = ContinuousClock.now + lifetime
        // The thread keeps the server alive until it stops serving.
        Thread { [self] in serve(maxRequests: maxRequests, deadline: deadline) }.start()
    }

    /// How many requests were answered.
    var requestCount: Int { lock.withLock { served } }

    /// Stops accepting; the serving thread notices within 50 ms and closes the socket.
    func stop() { lock.withLock { stopped = true } }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func serve(maxRequests: Int, deadline: ContinuousClock.Instant) {
        defer { close(fd) }
        while !isStopped, requestCount < maxRequests, ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let conn = accept(fd, nil, nil)
            if conn < 0 { continue }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            // Read the request head (up to the blank line); the body of a GET is empty.
            var request = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            while request.count < 64 * 1024 {
                let n = recv(conn, &buf, buf.count, 0)
                if n <= 0 { break }
                request += buf[0..<n]
                if String(decoding: request, as: UTF8.self).contains("\r\n\r\n") { break }
            }
            let reply = Array(Self.response.utf8)
            var sent = 0
            while sent < reply.count {
                let n = reply[sent...].withUnsafeBufferPointer { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                sent += n
            }
            shutdown(conn, Int32(SHUT_WR))
            close(conn)
            lock.withLock { served += 1 }
        }
    }
}
