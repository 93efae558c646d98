import Synchronization

/// Reuses `RedisBlockingConnection`s for short-lived blocking waits (one connection per
/// concurrent wait; idle ones are kept up to `maxIdle`).
public final class BlockingConnectionPool: Sendable {
    public let configuration: RedisConfiguration
    private let idle = Mutex<[RedisBlockingConnection]>([])
    private let maxIdle: Int

    public init(configuration: RedisConfiguration, maxIdle: Int = 8) {
        self.configuration = configuration
        self.maxIdle = maxIdle
    }

    /// Runs `body` with a connection of its own.
    public func withConnection<T: Sendable>(_ body: (RedisBlockingConnection) async throws -> T) async throws -> T {
        let conn = idle.withLock { $0.popLast() } ?? RedisBlockingConnection(configuration: configuration)
        do {
            let value = try await body(conn)
            release(conn)
            return value
        } catch {
            // A cancelled or failed connection reconnects on its next use, so it can be reused.
            release(conn)
            throw error
        }
    }

    private func release(_ conn: RedisBlockingConnection) {
        let keep = idle.withLock { list -> Bool in
            guard list.count < maxIdle else { return false }
            list.append(conn)
            return true
        }
        if !keep { conn.close() }
    }

    public func close() {
        let all = idle.withLock { list -> [RedisBlockingConnection] in
            defer { list.removeAll() }
            return list
        }
        for c in all { c.close() }
    }
}
