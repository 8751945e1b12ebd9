#!/usr/bin/python3
"""bench/gateway.py: the same routed add through the REST gateway and through
libzcart, side by side in one run (`make bench-gateway`; bench/README.md,
"REST gateway"; docs/gateway.md draws the conclusions).

One local cluster (3 replicas, 4 cart nodes x 64 slots, secure, defaults)
with one gateway (zcart-gateway, --workers 16).  Round after round, in this
order:

  libzcart  zcart-bench -w ops -c C: one session per client, adds of 1 unit
            cycling over 8 products, each client a libzcart connection
            (CurveZMQ) straight to the leader
  gateway   wrk -t C -c C -s bench/gateway_add.lua: the same adds as
            HTTP/1.1 POSTs on keep-alive connections to the gateway, which
            makes them through its libzcart workers

for C = 1 (p50 latency) and C = 8 (throughput).  Printed: each figure per
round, the medians, and the gateway/libzcart ratios.  wrk comes from
Debian (--install installs it).  --json FILE keeps everything.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (load_env, loadavg, CLUSTER)


def log(msg):
    print("gateway-bench: %s" % msg, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/gateway.py", description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(HERE), "build", "bin"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="each measurement (10)")
    ap.add_argument("--base-port", type=int, default=9400)
    ap.add_argument("--json", default=None, metavar="FILE")
    ap.add_argument("--install", action="store_true", help="apt-get install wrk if missing (root)")
    return ap.parse_args(argv)


def zcart_ops(a, env, clients):
    r = compare.run_json([os.path.join(a.bin, "zcart-bench"), "-w", "ops", "-c", str(clients),
                          "-d", str(a.seconds), "--json"], env=env)
    add = r["ops"]["add"]
    return {"per_s": r["ops_per_s"], "p50_us": add["p50_us"], "p99_us": add["p99_us"],
            "ok": r["outcomes"].get("OK", 0), "requests": r["requests"]}


def wrk_ops(a, env, clients):
    r = subprocess.run(["wrk", "-t", str(clients), "-c", str(clients), "-d", "%ds" % a.seconds,
                        "--timeout", "10s", "-s", os.path.join(HERE, "gateway_add.lua"),
                        env["ZCART_GATEWAY"]], capture_output=True, text=True, env=env,
                       timeout=a.seconds + 60)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError("wrk failed (%d): %s" % (r.returncode, (r.stderr or r.stdout)[-400:]))
    w = json.loads(lines[-1])
    secs = w["duration_us"] / 1e6
    return {"per_s": w["requests"] / secs, "p50_us": w["p50_us"], "p99_us": w["p99_us"],
            "non_2xx": w["errors_status"], "requests": w["requests"]}


def main(argv):
    a = parse_args(argv)
    if a.install and not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not shutil.which("wrk"):
        log("wrk is not installed (Debian's wrk; --install installs it)")
        return 1
    d = tempfile.mkdtemp(prefix="zcart-gateway-bench-")
    catalog = os.path.join(d, "catalog.csv")
    with open(catalog, "w") as f:
        for p in ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear"):
            f.write("%s,1000000000\n" % p)
    run_dir = os.path.join(d, "cluster")
    load0 = compare.loadavg()
    rounds = []
    try:
        r = subprocess.run([compare.CLUSTER, "up", "--dir", run_dir, "--replicas", "3",
                            "--cart-nodes", "4", "--slots", "64", "--gateways", "1",
                            "--gateway-arg=--workers=16", "--base-port", str(a.base_port),
                            "--bin", a.bin, "--catalog", catalog], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("zcart-cluster up failed: %s" % r.stderr.strip()[-600:])
        env = compare.load_env(run_dir)
        for i in range(a.rounds):
            row = {}
            for c in (1, 8):
                row["libzcart_%d" % c] = zcart_ops(a, env, c)
                row["gateway_%d" % c] = wrk_ops(a, env, c)
            rounds.append(row)
            log("round %d: 1 client add p50 libzcart %d us, gateway %d us; 8 clients "
                "libzcart %.0f/s, gateway %.0f/s"
                % (i + 1, row["libzcart_1"]["p50_us"], row["gateway_1"]["p50_us"],
                   row["libzcart_8"]["per_s"], row["gateway_8"]["per_s"]))
    finally:
        subprocess.run([compare.CLUSTER, "down", "--dir", run_dir], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)

    def med(key, field):
        return statistics.median(r[key][field] for r in rounds)

    res = {"load_before": load0, "load_after": compare.loadavg(), "rounds": rounds,
           "median": {k: {f: med(k, f) for f in ("per_s", "p50_us", "p99_us")}
                      for k in rounds[0]}}
    m = res["median"]
    res["ratios"] = {
        "p50_1_gateway_over_libzcart": m["gateway_1"]["p50_us"] / m["libzcart_1"]["p50_us"],
        "rate_1_gateway_over_libzcart": m["gateway_1"]["per_s"] / m["libzcart_1"]["per_s"],
        "rate_8_gateway_over_libzcart": m["gateway_8"]["per_s"] / m["libzcart_8"]["per_s"],
        "p99_8_gateway_over_libzcart": m["gateway_8"]["p99_us"] / m["libzcart_8"]["p99_us"]}
    print("\n| routed add (median of %d rounds, %d s each) | libzcart | gateway (HTTP) | ratio |"
          % (a.rounds, a.seconds))
    print("| --- | --- | --- | --- |")
    for label, k, f, fmt in (("1 client, p50 (us)", "1", "p50_us", "%.0f"),
                             ("1 client, adds/s", "1", "per_s", "%.0f"),
                             ("8 clients, adds/s", "8", "per_s", "%.0f"),
                             ("8 clients, p99 (us)", "8", "p99_us", "%.0f")):
        lz, gw = m["libzcart_" + k][f], m["gateway_" + k][f]
        print("| %s | %s | %s | %.2f |" % (label, fmt % lz, fmt % gw, gw / lz))
    bad = sum(r["gateway_%d" % c]["non_2xx"] for r in rounds for c in (1, 8))
    print("\nnon-2xx answers through the gateway: %d; load average %s -> %s"
          % (bad, load0, res["load_after"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
