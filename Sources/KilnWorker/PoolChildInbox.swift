#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pool child's view of its request pipe: requests in order, plus a look at what already waits
/// behind the current one, so a job the pool withdrew while it sat in the pipe is never started.
struct PoolChildInbox {
    let fd: Int32
    /// Requests read ahead of time, oldest first.
    private var ahead: [PoolRequest] = []
    /// The pipe reached end of file while reading ahead.
    private var ended = false

    init(fd: Int32) { self.fd = fd }

    /// The next request, blocking until one arrives; nil at end of stream.
    mutating func next() throws(PoolFrameError) -> PoolRequest? {
        if !ahead.isEmpty { return ahead.removeFirst() }
        if ended { return nil }
        guard let payload = try PoolFrameIO.readFrame(fd) else { return nil }
        return try PoolFrame.decodeRequest(payload)
    }

    /// Reads every request already waiting in the pipe (without waiting for more) and removes a
    /// drop of `job` from them; returns whether there was one.
    mutating func takeDrop(for job: PoolJob) throws(PoolFrameError) -> Bool {
        while !ended {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 0)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { break }
            // Readable: a whole frame is there or being written (frames are written in one go).
            guard let payload = try PoolFrameIO.readFrame(fd) else {
                ended = true
                break
            }
            ahead.append(try PoolFrame.decodeRequest(payload))
        }
        guard let i = ahead.firstIndex(of: .drop(id: job.id, queue: job.queue)) else { return false }
        ahead.remove(at: i)
        return true
    }
}
