// TEMPORARY STUB — replaced by the real pool from the `pool` branch.
import Foundation
import Kiln
import Logging
import ServiceLifecycle

public final class ProcessPool: Service, Sendable {
    public static var currentExecutable: String { "/proc/self/exe" }
    public let size: Int
    public init(size: Int, executable: String = ProcessPool.currentExecutable, logger: Logger, killGrace: Duration = .seconds(2)) {
        self.size = size
    }
    public func execute(_ job: PoolJob) async -> PoolOutcome { .crashed("stub") }
    public func run() async throws { try? await gracefulShutdown() }
}
public enum PoolChild {
    public static var isChild: Bool { false }
    public static func runIfChild(registry: JobRegistry) {}
}
