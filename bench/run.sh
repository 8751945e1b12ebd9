#!/usr/bin/env bash
# bench/run.sh: the zcart-bench figures of bench/README.md, reproducibly.
#
# For each cluster size in $REPLICAS (default "1 3") it starts a fresh local
# cluster (2 cart nodes x 16 slots, 1 stock service with a large inventory)
# on its own ports, runs the three workloads with $CONC clients for $SECS
# seconds each, prints zcart-bench's report and a one-line summary per run
# plus the raft term before and after (growth = elections caused by load),
# and tears the cluster down (also on failure or Ctrl-C).  Each size runs
# once per mode in $SECURITY (default "secure insecure": the cost of
# CurveZMQ, side by side in one run; the insecure clusters get --insecure).
#
#   bench/run.sh [BIN_DIR]          # default build/bin
#   REPLICAS="3" CONC=16 SECS=10 bench/run.sh
#   WORKLOADS=assign BROKER_ARGS="--snapshot-threshold=8192" bench/run.sh
#   SECURITY=secure bench/run.sh    # skip the insecure runs
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin}
replicas=${REPLICAS:-1 3}
conc=${CONC:-8}
secs=${SECS:-5}
base=${BASE_PORT:-8600}
workloads=${WORKLOADS:-assign ops mixed}
modes=${SECURITY:-secure insecure}
broker_args=()
for a in ${BROKER_ARGS:-}; do broker_args+=("--broker-arg=$a"); done
cluster=deploy/local/zcart-cluster
work=$(mktemp -d /tmp/zcart-bench.XXXXXX)
catalog=$work/catalog.csv
for p in apple banana cherry grape lemon mango orange pear; do
  echo "$p,1000000000"
done > "$catalog"

dirs=()
cleanup() {
  for d in "${dirs[@]}"; do $cluster down --dir "$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The leader's raft term: a term that grows while nothing is killed is an
# election that load caused (a spurious one).
leader_term() {
  "$bin/zcart" --brokers "$ZCART_BROKERS" --json status | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print(max(x.get("term") or 0 for x in r["replicas"]))'
}

echo "zcart-bench: $conc clients, $secs s per workload, replicas: $replicas, modes: $modes, broker args: ${BROKER_ARGS:-none}"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
summary=()
for n in $replicas; do
 for mode in $modes; do
  dir=$work/r$n-$mode
  dirs+=("$dir")
  sec=()
  [ "$mode" = insecure ] && sec=(--insecure)
  $cluster up --dir "$dir" --replicas "$n" --cart-nodes 2 --slots 16 \
    --base-port "$base" --bin "$bin" --catalog "$catalog" "${sec[@]}" "${broker_args[@]}" >/dev/null 2>&1
  base=$((base + 100))
  unset ZCART_INSECURE ZCART_SERVER_KEY ZCART_CERT ZCART_KEYS
  # shellcheck disable=SC1091
  set -a; . "$dir/env"; set +a   # ZCART_BROKERS and the keys (or ZCART_INSECURE=1)
  term0=$(leader_term)
  for w in $workloads; do
    echo
    echo "=== $n replica(s), $mode, workload $w"
    out=$("$bin/zcart-bench" --brokers "$ZCART_BROKERS" -c "$conc" -d "$secs" -w "$w" --json)
    printf '%s\n' "$out"
    line=$(printf '%s' "$out" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
parts = ["%s p50 %d p99 %d max %d" % (k, v["p50_us"], v["p99_us"], v["max_us"])
         for k, v in r["ops"].items()]
ko = {k: v for k, v in r["outcomes"].items() if k != "OK"}
print("%7.0f req/s  %s%s" % (r["ops_per_s"], " | ".join(parts), ("  KO %r" % ko) if ko else ""))')
    summary+=("$(printf '%d replica(s) %-8s %-6s %s' "$n" "$mode" "$w" "$line")")
  done
  term1=$(leader_term)
  summary+=("$(printf '%d replica(s) %-8s raft term %s -> %s over the runs (elections under load: %s)' \
    "$n" "$mode" "$term0" "$term1" "$((term1 - term0))")")
  $cluster down --dir "$dir" >/dev/null
 done
done
echo
echo "=== summary (latencies in us)"
printf '%s\n' "${summary[@]}"
