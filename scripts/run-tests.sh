#!/usr/bin/env bash
# Run the CTest suite in each build directory given, then (with
# --chaos-smoke BIN_DIR, which must come first) a short seeded chaos run
# against that build's binaries (tests/chaos, docs/chaos.md; needs root for
# network namespaces), (with --package BUILD_DIR, next) the .deb built,
# installed, verified and removed (scripts/check-package.sh; root), and
# print one closing line for the whole run: "N passed, N failed" (each CTest
# test counts one, the chaos run one, the package check one).
#
# CTest runs ZCART_TEST_JOBS tests at once (default 3): the integration and
# conformance tests spend most of their time waiting on timers (session
# TTLs, heartbeats, elections) — the whole suite keeps 2 cores about 40%
# busy at -j2 — so a third job shortens the run without starving one.
set -u
jobs=${ZCART_TEST_JOBS:-3}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
chaos_bin=""
package_build=""
if [ "${1:-}" = "--chaos-smoke" ]; then
  chaos_bin=$2
  shift 2
fi
if [ "${1:-}" = "--package" ]; then
  package_build=$2
  shift 2
fi
passed=0
failed=0
for dir in "$@"; do
  echo "=== ctest in $dir"
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" 2>&1 | tee "$log"
  # "100% tests passed, 0 tests failed out of 12"
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "run-tests: no CTest summary from $dir" >&2
    failed=$((failed + 1))
  else
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
    t=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
    passed=$((passed + t - f))
    failed=$((failed + f))
  fi
  rm -f "$log"
done
if [ -n "$chaos_bin" ]; then
  # A fixed seed, so a failure here replays with the same schedule:
  #   make chaos-smoke CHAOS_SEED=1
  echo "=== chaos smoke (seed 1)"
  if /usr/bin/python3 tests/chaos/run.py --bin "$chaos_bin" --seed 1 --duration 90 --interval 4 \
       --fault-duration 3:8 --converge-timeout 40; then
    passed=$((passed + 1))
  else
    echo "run-tests: the chaos smoke run failed (its run directory is named above)" >&2
    failed=$((failed + 1))
  fi
fi
if [ -n "$package_build" ]; then
  echo "=== package check (.deb from $package_build)"
  if bash scripts/check-package.sh "$package_build"; then
    passed=$((passed + 1))
  else
    echo "run-tests: the package check failed" >&2
    failed=$((failed + 1))
  fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
