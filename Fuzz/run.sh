#!/usr/bin/env bash
# Runs Kiln's fuzz targets for a bounded time each and prints executions, seconds and crashes per
# target; exits non-zero if any target crashed. Used by `make fuzz`; see docs/testing.md.
#
#   FUZZ_SECONDS=30     seconds per target (8 targets: about 4 minutes in all, plus the build)
#   FUZZ_TARGETS="url resp"   a subset (default: all)
#   FUZZ_ENGINE=libfuzzer|standalone   standalone = the seeded mutation loop, no sanitizers,
#                       for toolchains without libFuzzer (macOS); default libfuzzer
#   FUZZ_JOBS=2         build parallelism
#
# libFuzzer keeps what it learns in .build-fuzz/corpus/<target> (reused next run); the committed
# seeds in Fuzz/corpus/<target> are only read. Crash inputs land in .build-fuzz/artifacts/.
set -uo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SECONDS_PER=${FUZZ_SECONDS:-30}
ENGINE=${FUZZ_ENGINE:-libfuzzer}
JOBS=${FUZZ_JOBS:-2}
ALL="duration url record envelope resp batch json jobid"
TARGETS=${FUZZ_TARGETS:-$ALL}
SCRATCH=.build-fuzz
FILTER='Cannot export local symbol|prohibited flag|unhandled; explicitly declare|CMakeLists.txt'

if [ "$ENGINE" = libfuzzer ]; then
  echo "building KilnFuzz with libFuzzer + AddressSanitizer (first build takes a few minutes)..."
  "$SWIFT" build --scratch-path "$SCRATCH" -c debug -j "$JOBS" --product KilnFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DKILN_LIBFUZZER -Xswiftc -use-ld=lld \
    2>&1 | grep -Ev "$FILTER" | tail -5
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz build failed" >&2; exit 2; }
  BIN=$SCRATCH/debug/KilnFuzz
else
  echo "building KilnFuzz (standalone seeded mutator, release)..."
  "$SWIFT" build --scratch-path "$SCRATCH-standalone" -c release -j "$JOBS" --product KilnFuzz \
    2>&1 | grep -Ev "$FILTER" | tail -5
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz build failed" >&2; exit 2; }
  BIN=$SCRATCH-standalone/release/KilnFuzz
fi

mkdir -p "$SCRATCH/artifacts" "$SCRATCH/logs"
export SWIFT_BACKTRACE=enable=no   # the Swift backtracer and ASan fight over the crashing thread
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0}

failed=0
printf '\n%-10s %12s %8s %8s  %s\n' target executions seconds crashes notes
for t in $TARGETS; do
  log=$SCRATCH/logs/$t.log
  start=$(date +%s.%N)
  if [ "$ENGINE" = libfuzzer ]; then
    mkdir -p "$SCRATCH/corpus/$t"
    dict=(); [ -f "Fuzz/dict/$t.dict" ] && dict=(-dict="Fuzz/dict/$t.dict")
    KILN_FUZZ_TARGET=$t "$BIN" "$SCRATCH/corpus/$t" "Fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$SECONDS_PER" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$SCRATCH/artifacts/$t-" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  else
    "$BIN" "$t" --seconds "$SECONDS_PER" --seed "${FUZZ_SEED:-1}" "Fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(grep -o '[0-9]* mutated runs' "$log" | grep -o '^[0-9]*')
  fi
  rm -f "${TMPDIR:-/tmp}"/kiln-fuzz-batch-*.jsonl   # the batch target's scratch file
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  if [ "$rc" = 0 ]; then
    printf '%-10s %12s %8.1f %8s\n' "$t" "${execs:-?}" "$secs" 0
  else
    failed=1
    what=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|Fatal error|Precondition failed|Assertion failed' "$log" | cut -c1-90)
    art=$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -1)
    printf '%-10s %12s %8.1f %8s  %s\n' "$t" "${execs:-?}" "$secs" 1 "${what:-exit $rc} ${art:+(input: $art)}"
    echo "           log: $log"
  fi
done
[ "$failed" = 0 ] && echo "no crashes" || echo "CRASHES FOUND: reproduce with KILN_FUZZ_TARGET=<target> $BIN <input>"
exit "$failed"
