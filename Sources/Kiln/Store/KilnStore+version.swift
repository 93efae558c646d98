import KilnRedis
import Synchronization

/// The version marker `P:version` (`docs/protocol.md`, "Version marker"): `3`. A prefix
/// without it is empty (then writers set it) unless `P:queues` exists: that is protocol v2 data,
/// written before v2 had a marker. Anything else stops the caller before it reads or writes more.
extension KilnStore {
    /// The protocol version this store speaks.
    package static var protocolVersion: Int { KilnScripts.version }

    /// What this store already knows about the marker, shared by the stores made from it.
    final class VersionGate: Sendable {
        enum State { case unchecked, matches, marked }
        let state = Mutex(State.unchecked)
    }

    /// Checks the prefix's version marker once per store (later calls return at once). With
    /// `mark`, a missing marker on an empty prefix is written (`SET NX`); without, an empty prefix
    /// is fine as it is. Throws `KilnError(.versionMismatch)` if the marker names another version,
    /// or is missing while `P:queues` exists (v2 data). A refusal writes nothing.
    package func checkVersion(mark: Bool) async throws {
        let known = marker.state.withLock { $0 }
        if known == .marked || (known == .matches && !mark) { return }
        let mine = String(Self.protocolVersion)
        let r = try await connection.pipeline([["GET", keys.version], ["EXISTS", keys.queues]])
            .checked(command: "GET/EXISTS", address: address)
        var found = r[0].lossyString  // bytes that are not UTF-8 are another marker too
        if found == nil, r[1].int == 1 { found = "2" }
        if found == nil, mark {
            let set = try await connection.pipeline([["SET", keys.version, mine, "NX"], ["GET", keys.version]])
                .checked(command: "SET/GET \(keys.version)", address: address)
            found = set[1].lossyString
        }
        if let found, found != mine {
            if let v = Int(found), v >= 1, v < Self.protocolVersion, found.utf8.count <= 20 {
                throw KilnError.olderProtocolData(prefix: prefix, found: found, mine: mine)
            }
            throw KilnError.versionMismatch(prefix: prefix, found: found, mine: mine)
        }
        let learned: VersionGate.State = found == nil ? .matches : .marked
        marker.state.withLock { if $0 != .marked { $0 = learned } }
    }
}

extension KilnError {
    /// The prefix holds data of an older protocol version, which this Kiln does not migrate.
    static func olderProtocolData(prefix: String, found: String, mine: String) -> KilnError {
        KilnError(.versionMismatch, "prefix '\(SafeText.escaped(prefix))' holds protocol v\(found) data but this kiln speaks v\(mine); drain it with a v\(found) worker, or use another --prefix / KILN_PREFIX")
    }

    /// The prefix holds data of another protocol version than this Kiln speaks.
    static func versionMismatch(prefix: String, found: String, mine: String) -> KilnError {
        let what = found.utf8.count <= 20 && found.allSatisfy({ $0.isNumber }) ? "protocol v\(found) data" : "data of an unknown protocol version ('\(SafeText.escaped(String(found.prefix(20))))')"
        return KilnError(.versionMismatch, "prefix '\(SafeText.escaped(prefix))' holds \(what) but this kiln speaks v\(mine); upgrade kiln, or use another --prefix / KILN_PREFIX")
    }
}
