import KilnWorker

// A pool child of `kiln-peer worker` is this binary again: it runs CPU jobs for its parent and
// never returns. It must run before the arguments are parsed (a child gets none).
PoolChild.runIfChild(registry: PeerJobs.registry())
await PeerCLI.main()
