# Kiln — see README.md. Every target installs what it needs first (scripts/ensure-deps.sh).
SWIFT ?= swift
JOBS ?= 2

.PHONY: all deps build release test demo bench clean fuzz

all: build

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build -j $(JOBS)

release: deps
	$(SWIFT) build -c release -j $(JOBS) --product kiln

# The whole suite: unit tests and integration tests against a real redis-server that the test
# harness starts on a free loopback port. Builds everything (the example worker included) first.
test: deps
	$(SWIFT) build --build-tests -j $(JOBS)
	$(SWIFT) test --skip-build

# End to end against a throwaway Redis under a temp dir: prints a table of what happened.
demo: release
	.build/release/kiln demo

# Fuzz the parsers with libFuzzer + AddressSanitizer, FUZZ_SECONDS (default 30) per target;
# prints executions, seconds and crashes per target and fails on a crash. See docs/testing.md.
fuzz: deps
	SWIFT=$(SWIFT) FUZZ_JOBS=$(JOBS) Fuzz/run.sh

clean:
	rm -rf .build
