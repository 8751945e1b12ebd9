#!/usr/bin/env bash
# Run the CTest suite in each build directory given, then print one closing
# line for the whole run: "N passed, N failed".
set -u
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
for dir in "$@"; do
  echo "=== ctest in $dir"
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$log"
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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
