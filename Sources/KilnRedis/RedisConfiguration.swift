import Foundation

/// Where and how to connect to Redis.
///
/// Built from a URL: `redis://[user:password@]host[:port][/db]`, `redis://:password@host`
/// (password without a user) or `unix:///path/to.sock[?db=N]`. Percent-escapes in the user and
/// password are decoded. `description` never shows the password.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    /// The server's address. Default `127.0.0.1:6379` over TCP.
    public var endpoint: Endpoint
    /// The ACL user to authenticate as (`AUTH user password`); nil = the default user.
    public var username: String?
    /// The password, if the server asks for one. Never printed: `description` and errors leave it out.
    public var password: String?
    /// The database number selected after connecting (`SELECT`). Default 0.
    public var database: Int
    /// How long a connect attempt may take. Default 2 s.
    public var connectTimeout: Duration
    /// How long a non-blocking command may wait for its reply. Default 10 s.
    public var commandTimeout: Duration

    /// Settings given field by field; every default is the one documented on its property.
    public init(
        endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(10)
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses a Redis URL. Throws `RedisError(.invalidURL)` with a sentence naming what is wrong;
    /// the password is never echoed back.
    public init(url: String) throws {
        self.init()
        if url.hasPrefix("unix://") {
            let rest = String(url.dropFirst("unix://".count))
            let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts[0])
            guard path.hasPrefix("/") else {
                throw RedisError(.invalidURL, "invalid Redis URL: a unix socket URL needs an absolute path, as in unix:///run/redis.sock")
            }
            endpoint = .unix(path: path)
            if parts.count == 2 {
                for item in parts[1].split(separator: "&") {
                    let kv = item.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { continue }
                    switch kv[0] {
                    case "db": database = try Self.parseDB(String(kv[1]))
                    case "password": password = try Self.unescape(String(kv[1]), "password")
                    case "user", "username": username = try Self.unescape(String(kv[1]), "user name")
                    default:
                        throw RedisError(.invalidURL, "invalid Redis URL: unknown query parameter '\(kv[0])' (expected db)")
                    }
                }
            }
            return
        }
        guard url.hasPrefix("redis://") else {
            let scheme = url.split(separator: ":", maxSplits: 1).first.map(String.init) ?? url
            throw RedisError(.invalidURL, "invalid Redis URL: scheme '\(scheme.count > 20 ? "?" : scheme)' is not supported (use redis:// or unix://)")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        // userinfo: everything before the last '@' (passwords may contain '@' only percent-encoded, but be lenient).
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                let pass = String(userinfo[userinfo.index(after: colon)...])
                username = user.isEmpty ? nil : try Self.unescape(user, "user name")
                password = try Self.unescape(pass, "password")
            } else if !userinfo.isEmpty {
                // redis://password@host is a common shorthand for a password without a user.
                password = try Self.unescape(String(userinfo), "password")
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty { database = try Self.parseDB(String(db)) }
        }
        var host = String(hostPort)
        var port = 6379
        if hostPort.hasPrefix("[") {  // [::1]:6379
            guard let close = hostPort.firstIndex(of: "]") else {
                throw RedisError(.invalidURL, "invalid Redis URL: unclosed '[' in the host")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.parsePort(String(after.dropFirst())) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.parsePort(String(hostPort[hostPort.index(after: colon)...]))
        }
        guard !host.isEmpty else {
            throw RedisError(.invalidURL, "invalid Redis URL: no host given (expected redis://host[:port][/db])")
        }
        endpoint = .tcp(host: host, port: port)
    }

    /// Decodes the percent-escapes of the user name or password. A `%` not followed by two hex
    /// digits (or escapes that are not UTF-8) is a bad URL, not a wrong password; the text itself
    /// is never echoed.
    private static func unescape(_ s: String, _ what: String) throws -> String {
        guard s.contains("%") else { return s }
        guard let decoded = s.removingPercentEncoding else {
            throw RedisError(.invalidURL, "invalid Redis URL: the \(what) has a bad percent-escape (write a '%' as %25; every '%' must be followed by two hex digits)")
        }
        return decoded
    }

    private static func parsePort(_ s: String) throws -> Int {
        guard let p = Int(s), (1...65535).contains(p) else {
            throw RedisError(.invalidURL, "invalid Redis URL: port '\(s.prefix(12))' is not a number from 1 to 65535")
        }
        return p
    }

    private static func parseDB(_ s: String) throws -> Int {
        guard let d = Int(s), d >= 0, d < 1 << 20 else {
            throw RedisError(.invalidURL, "invalid Redis URL: database '\(s.prefix(12))' is not a non-negative number")
        }
        return d
    }

    /// `host:port` or the socket path: where errors say they were talking to.
    public var address: String {
        switch endpoint {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return path
        }
    }

    /// The URL with the password replaced by `***`, safe for logs.
    public var description: String {
        var auth = ""
        if let username { auth = username + (password == nil ? "" : ":***") + "@" }
        else if password != nil { auth = ":***@" }
        switch endpoint {
        case .tcp: return "redis://\(auth)\(address)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)"
        }
    }
}
