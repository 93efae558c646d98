import Foundation
import Kiln
import KilnRedis
import Testing

@Suite struct RedisURLTests {
    @Test func tcpDefaults() throws {
        let c = try RedisConfiguration(url: "redis://localhost")
        #expect(c.endpoint == .tcp(host: "localhost", port: 6379))
        #expect(c.database == 0 && c.password == nil && c.username == nil)
    }

    @Test func userPasswordPortDB() throws {
        let c = try RedisConfiguration(url: "redis://alice:s%40cret@10.0.0.5:6380/3")
        #expect(c.endpoint == .tcp(host: "10.0.0.5", port: 6380))
        #expect(c.username == "alice" && c.password == "s@cret" && c.database == 3)
        #expect(!c.description.contains("cret"))
        #expect(c.description == "redis://alice:***@10.0.0.5:6380/3")
    }

    @Test func passwordWithoutUser() throws {
        let c = try RedisConfiguration(url: "redis://:pw@host")
        #expect(c.username == nil && c.password == "pw")
        #expect(!c.description.contains("pw@"))
    }

    @Test func ipv6AndUnix() throws {
        #expect(try RedisConfiguration(url: "redis://[::1]:7000").endpoint == .tcp(host: "::1", port: 7000))
        let u = try RedisConfiguration(url: "unix:///run/redis.sock?db=2")
        #expect(u.endpoint == .unix(path: "/run/redis.sock") && u.database == 2)
    }

    @Test(arguments: ["http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:abc", "redis://h/x", "unix://relative", "unix:///s?foo=1"])
    func rejectsBadURLs(_ url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }

    @Test func errorsNeverEchoThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://:hunter2@h:notaport")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }
}

@Suite struct DurationTests {
    @Test func parsesUnits() throws {
        #expect(try KilnDuration.parse("250ms") == .milliseconds(250))
        #expect(try KilnDuration.parse("30s") == .seconds(30))
        #expect(try KilnDuration.parse("5m") == .seconds(300))
        #expect(try KilnDuration.parse("1h") == .seconds(3600))
        #expect(try KilnDuration.parse("1.5") == .milliseconds(1500))
        #expect(try KilnDuration.parse("0") == .zero)
    }

    @Test(arguments: ["", "abc", "5x", "-1s", "1.2.3", "ms", "1e3", "99999999999h"])
    func rejectsBad(_ text: String) {
        #expect(throws: KilnError.self) { try KilnDuration.parse(text) }
    }

    @Test func formats() {
        #expect(KilnDuration.format(.milliseconds(250)) == "250ms")
        #expect(KilnDuration.format(.seconds(30)) == "30s")
        #expect(KilnDuration.format(.seconds(300)) == "5m")
    }
}

@Suite struct JobIDTests {
    @Test func uniqueAndSorted() {
        let ids = (0..<5000).map { _ in JobID.make() }
        #expect(Set(ids).count == ids.count)
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.count == 26 && JobID.isValid($0) })
    }

    @Test func laterTimeSortsLater() {
        let a = JobID.make(now: Date(timeIntervalSince1970: 1_000_000))
        let b = JobID.make(now: Date(timeIntervalSince1970: 2_000_000))
        #expect(a < b)
    }

    @Test func validity() {
        #expect(!JobID.isValid("has space"))
        #expect(!JobID.isValid("brace{x}"))
        #expect(!JobID.isValid(""))
        #expect(JobID.isValid("order-42"))
    }
}

@Suite struct JSONTextTests {
    @Test func validates() {
        #expect(JSONText.isValid("{\"a\":1}"))
        #expect(JSONText.isValid("null") && JSONText.isValid("3") && JSONText.isValid("\"s\""))
        #expect(!JSONText.isValid("{bad"))
        #expect(!JSONText.isValid(""))
    }

    @Test func quotes() {
        #expect(JSONText.quote("a\"b\\c\n") == "\"a\\\"b\\\\c\\n\"")
    }
}

extension DurationTests {
    @Test(arguments: [0, 1, 999, 1000, 1500, 60_000, 61_234, 1_234_567, 3_600_000, 86_400_000])
    func formatReadsBack(_ ms: Int64) throws {
        #expect(try KilnDuration.parse(KilnDuration.format(.milliseconds(ms))) == .milliseconds(ms))
    }
}
