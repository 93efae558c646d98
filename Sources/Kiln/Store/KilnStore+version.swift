import KilnRedis
import Synchronization

/// The version marker `P:version` (`docs/protocol.md`, "Version marker"): a string holding the
/// protocol version of the data under the prefix. Writers set it if it is missing (`SET NX`);
/// anyone who finds another version stops before reading or writing anything else.
extension KilnStore {
    /// The protocol version this Kiln speaks (the version of its scripts).
    public static var protocolVersion: Int { KilnScripts.version }

    /// What this store already knows about the marker, shared by the stores made from it.
    final class VersionGate: Sendable {
        enum State { case unchecked, matches, marked }
        let state = Mutex(State.unchecked)
    }

    /// Checks the prefix's version marker once per store (later calls return at once). With
    /// `mark`, a missing marker is written (a producer about to enqueue, a worker starting);
    /// without, a missing one is fine (a prefix nobody wrote yet). Throws
    /// `KilnError(.versionMismatch)` if the marker names another version.
    public func checkVersion(mark: Bool) async throws {
        let known = marker.state.withLock { $0 }
        if known == .marked || (known == .matches && !mark) { return }
        let key = keys.version
        let mine = String(Self.protocolVersion)
        let found: String?
        if mark {
            let r = try await connection.pipeline([["SET", key, mine, "NX"], ["GET", key]])
                .checked(command: "SET/GET \(key)", address: address)
            found = r[1].string
        } else {
            found = try await connection.send(["GET", key]).string
        }
        if let found, found != mine {
            throw KilnError.versionMismatch(prefix: prefix, found: found, mine: mine)
        }
        let learned: VersionGate.State = mark ? .marked : .matches
        marker.state.withLock { if $0 != .marked { $0 = learned } }
    }
}

extension KilnError {
    /// The prefix holds data of another protocol version than this Kiln speaks.
    static func versionMismatch(prefix: String, found: String, mine: String) -> KilnError {
        let what = found.utf8.count <= 20 && found.allSatisfy({ $0.isNumber }) ? "protocol v\(found) data" : "data of an unknown protocol version ('\(SafeText.escaped(String(found.prefix(20))))')"
        return KilnError(.versionMismatch, "prefix '\(SafeText.escaped(prefix))' holds \(what) but this kiln speaks v\(mine); upgrade kiln, or use another --prefix / KILN_PREFIX")
    }
}
