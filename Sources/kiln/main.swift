import Foundation
import KilnWorker

// A pool child of `kiln worker` is this binary again: it runs jobs for its parent and never returns.
PoolChild.runIfChild(registry: BuiltinJobs.registry())
await CLI.main()
