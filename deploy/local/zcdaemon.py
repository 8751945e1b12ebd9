"""zcdaemon: zcart's daemons' command lines, and when replicas agree.

Shared by deploy/local/zcart-cluster, the integration harness, the chaos
harness and the benchmarks (they put deploy/local on sys.path), so all of
them start the daemons with the same flags and call a cluster converged on
the same terms.  Keys are the layout `zcart keygen KEYS` writes
(docs/security.md); keys None means every daemon runs --insecure.
"""

import os


def security_flags(kind, keys, name=None):
    """The security flags of one daemon: kind "broker", "stock" or "cart"
    (name: the replica's raft id, or the cart node's name, whose own key it
    uses: `zcart keygen KEYS NODE... --replicas N` makes them)."""
    if keys is None:
        return ["--insecure"]
    allow = os.path.join(keys, "allow")
    if kind == "broker":
        # name: the replica's raft id, whose own raft key it gets
        return ["--cert", os.path.join(keys, "replica.cert_secret"), "--allow", allow,
                "--raft-cert", os.path.join(keys, "raft-%s.cert_secret" % name)]
    if kind == "stock":
        return ["--cert", os.path.join(keys, "stock.cert_secret"), "--allow", allow]
    if kind == "cart":
        return ["--cert", os.path.join(keys, "cart-%s.cert_secret" % name),
                "--broker-key", os.path.join(keys, "replica.cert"),
                "--stock-key", os.path.join(keys, "stock.cert")]
    if kind == "gateway":
        # a client of the cluster: the client key, the replicas' public key
        return ["--server-key", os.path.join(keys, "replica.cert"),
                "--cert", os.path.join(keys, "client.cert_secret")]
    raise ValueError("no daemon kind %r" % kind)


def read_cert(path):
    """(public, secret) z85 bytes of a czmq certificate file (secret b"" in a
    public one)."""
    pub, sec = b"", b""
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k.strip() == "public-key":
                pub = v.strip().strip('"').encode()
            elif k.strip() == "secret-key":
                sec = v.strip().strip('"').encode()
    return pub, sec


def replica_spec(m):
    """A --replica value from {"id", "raft", "client", "cart"}."""
    return "%d=%s,%s,%s" % (m["id"], m["raft"], m["client"], m["cart"])


def broker_argv(bindir, rid, data, replicas, keys):
    """zcart-broker as replica rid of `replicas` (dicts as replica_spec takes)."""
    argv = [os.path.join(bindir, "zcart-broker"), "--id", str(rid), "--data", data]
    for m in replicas:
        argv += ["--replica", replica_spec(m)]
    return argv + security_flags("broker", keys, rid)


def cart_argv(bindir, name, slots, data, brokers, stocks, keys, hello_interval=None):
    """zcart-cart `name` with `slots` slots, talking to the replicas' cart
    endpoints `brokers` and the stock endpoints `stocks`."""
    argv = [os.path.join(bindir, "zcart-cart"), "--name", name, "--slots", str(slots),
            "--data", data, "--brokers", ",".join(brokers), "--stock", ",".join(stocks)]
    if hello_interval is not None:
        argv += ["--hello-interval", str(hello_interval)]
    return argv + security_flags("cart", keys, name)


def stock_argv(bindir, bind, data, catalog, keys, delay=None):
    """zcart-stock on `bind`, seeded from `catalog` (delay: --delay MIN,MAX)."""
    argv = [os.path.join(bindir, "zcart-stock"), "--bind", bind, "--data", data,
            "--catalog", catalog]
    if delay:
        argv += ["--delay", delay]
    return argv + security_flags("stock", keys)


def gateway_argv(bindir, listen, brokers, keys, token_file=None):
    """zcart-gateway serving HTTP on `listen` for the replicas' client
    endpoints `brokers`; token_file: its --token-file."""
    argv = [os.path.join(bindir, "zcart-gateway"), "--listen", listen,
            "--brokers", ",".join(brokers)]
    if token_file:
        argv += ["--token-file", token_file]
    return argv + security_flags("gateway", keys)


def disagreement(statuses, expected):
    """Why the replicas' statuses do not show a converged cluster of
    `expected` replicas, or None when they do: every replica answered,
    exactly one is a ready leader, and every one is at the leader's applied
    index with the leader's digest.  statuses: one dict per replica that
    answered, with role, ready, applied_index and digest (zcart status
    --json's replicas, or STATUS props)."""
    statuses = [s for s in statuses if s and s.get("reachable", True)]
    if len(statuses) != expected:
        return "%d of %d replicas answer" % (len(statuses), expected)
    leaders = [s for s in statuses
               if s.get("role") == "leader" and str(s.get("ready")) == "1"]
    if len(leaders) != 1:
        return "roles %s" % [(s.get("role"), s.get("ready")) for s in statuses]
    ld = leaders[0]
    for s in statuses:
        if (s.get("applied_index"), s.get("digest")) != (ld.get("applied_index"),
                                                         ld.get("digest")):
            return "replica %s at %s/%s, leader at %s/%s" % (
                s.get("id"), s.get("applied_index"), s.get("digest"),
                ld.get("applied_index"), ld.get("digest"))
    return None
