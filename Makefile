# Kiln — see README.md. Every target installs what it needs first (scripts/ensure-deps.sh).
SWIFT ?= swift
JOBS ?= 2
# Release binaries link the Swift runtime and Foundation statically: `kiln enqueue --wait` then
# starts in about 10 ms instead of 24 (no dynamic loading of a dozen Swift libraries). Every release
# build must use the same flags, or SwiftPM rebuilds all modules when it switches between them.
RELEASE = $(SWIFT) build -c release -j $(JOBS) --static-swift-stdlib

.PHONY: all deps build release peer test test-hosts demo chaos bench fuzz clean

all: build

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build -j $(JOBS)

release: deps
	$(RELEASE) --product kiln

# kiln-peer, the adapter for the peer benchmark harness (../shared/peers; Sources/KilnPeer/README.md),
# built like every release binary; prints its path for KILN_PEER.
peer: deps
	$(RELEASE) --product kiln-peer
	@echo "KILN_PEER=$(CURDIR)/.build/release/kiln-peer"

# The whole suite: unit tests and integration tests against a real redis-server that the test
# harness starts on a free loopback port. Builds everything (the example worker included) first.
test: deps
	$(SWIFT) build --build-tests -j $(JOBS)
	$(SWIFT) test --skip-build

# Workers on four network-namespace hosts drain 20,000 jobs against a Redis in a namespace of its own
# while one host is cut off the network and another is stalled (docs/multi-host.md); a few minutes.
# Needs root for `ip netns`: where namespaces cannot be created it says so in one line and exits 0
# without building (--preflight exits 3 then).
test-hosts:
	@scripts/test-hosts.sh --preflight; rc=$$?; if [ $$rc = 3 ]; then exit 0; elif [ $$rc != 0 ]; then exit $$rc; fi; \
	echo "$(RELEASE) --product kiln-chaos"; $(RELEASE) --product kiln-chaos && scripts/test-hosts.sh

# End to end against a throwaway Redis under a temp dir: prints a table of what happened.
demo: release
	.build/release/kiln demo

# A bounded chaos run (default about 3 minutes; CHAOS_SECONDS, CHAOS_JOBS, CHAOS_SEED, CHAOS_MIX=standard|poison
# to change it):
# kills, stops and restarts workers and Redis while jobs flow, then checks nothing was lost.
chaos: deps
	$(RELEASE) --product kiln-chaos
	.build/release/kiln-chaos run

# Release-mode benchmarks W1–W6 against a Redis of their own (docs/performance.md). Sizes scale with
# BENCH_SCALE (default 1.0, under 5 minutes); results in bench-results/latest.json and latest.md.
# BENCH_BUILD=.build-x to build elsewhere.
BENCH_BUILD ?= .build
bench:
	@scripts/ensure-deps.sh
	$(RELEASE) --scratch-path $(BENCH_BUILD) --product kiln
	$(RELEASE) --scratch-path $(BENCH_BUILD) --product kiln-bench
	$(BENCH_BUILD)/release/kiln-bench

# Fuzz the parsers with libFuzzer + AddressSanitizer, FUZZ_SECONDS (default 30) per target;
# prints executions, seconds and crashes per target and fails on a crash. See docs/testing.md.
fuzz: deps
	SWIFT=$(SWIFT) FUZZ_JOBS=$(JOBS) Fuzz/run.sh

clean:
	rm -rf .build
