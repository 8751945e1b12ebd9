"""net: the chaos suite's private network -- namespaces, a bridge, partitions.

Design
------
Every daemon of a chaos run lives in a network namespace of its own, with
one address on a private test range that exists only inside the namespaces
this module creates (never in the root namespace, never routed anywhere):

    zc-net   holds the bridge zcbr0 and the host ends of every veth pair
             (zcv-<host>); no address, no process
    zc-b1..  broker replicas      10.77.0.11, .12, ...
    zc-c1..  cart nodes           10.77.0.21, .22, ...
    zc-s1..  stock services       10.77.0.31, ...
    zc-cli   every client session 10.77.0.41
    zc-ctl   the harness's own STATUS probes, never partitioned: it can find
             the leader while clients are cut off     10.77.0.51

A host namespace has `lo` and `eth0` (the far end of its veth), addressed
10.77.0.X/24; all of them share the one L2 segment of zcbr0.  Nothing is
created in the root namespace: the veth pairs are made inside zc-net with
their peer moved straight into the host namespace, so deleting the
namespaces deletes every link.

Partitions are nftables rules in the affected namespaces: table `inet
zcchaos`, a set `blocked` of peer addresses, and input/output chains that
drop packets from/to them.  A cut between A and B installs the rule on both
sides, so it holds in both directions whichever side a packet starts from.
`heal()` deletes the table everywhere.  Drop, not reject: a partitioned peer
looks like a silent network, and TCP connections survive the cut.

Aimed drops are a second table, `inet zcchaosd`, one per namespace that has
any (`drop(host, input=[...], output=[...])`, replaced atomically): nft
match expressions such as `tcp dport 7031` (a cart's replies to the
brokers) or `numgen random mod 100 < 20` (random packet loss), each ending
in `drop`.  They are kept apart from the partitions so that two faults can
be on at once and each heals only its own (`undrop(host)`; `heal()` removes
partitions only, `heal_drops()` every aimed drop).

Clean-up: `Net` remembers every namespace it created, in creation order, in
memory and in REGISTRY (a JSON file under /run), and `teardown()` kills any
process still inside one (by pid, from `ip netns pids`), deletes the
namespaces and then the registry.  `leftovers()` lists whatever an earlier
run left -- zc-* namespaces, zc* links or zcchaos tables in the root
namespace -- and `cleanup_leftovers()` removes them (run.py --cleanup).
Only names with the zc- prefix are ever touched.
"""

import json
import os
import re
import signal
import subprocess
import time

SUBNET = "10.77.0"
PREFIX = 24
BRIDGE = "zcbr0"
NET_NS = "zc-net"
TABLE = "zcchaos"
DROP_TABLE = "zcchaosd"
NS_PREFIX = "zc-"
REGISTRY = "/run/zcchaos-registry.json"

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"
NFT = "/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "nft"


class NetError(Exception):
    """A command that sets up or tears down the network failed."""


def run(argv, check=True, input=None, timeout=20):
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise NetError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                            (r.stderr or r.stdout).strip()))
    return r


def list_namespaces():
    """Names of every network namespace `ip netns` knows."""
    out = run([IP, "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ns_pids(ns):
    out = run([IP, "netns", "pids", ns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def _root_links():
    out = run([IP, "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        m = re.match(r"\d+:\s+([^:@\s]+)", line)
        if m:
            names.append(m.group(1))
    return names


def _root_tables():
    out = run([NFT, "list", "tables"], check=False).stdout
    return [line.split()[1:] for line in out.splitlines() if line.startswith("table ")]


def leftovers():
    """What an earlier run left behind, as human-readable strings ([] if none)."""
    found = ["namespace %s" % ns for ns in list_namespaces() if ns.startswith(NS_PREFIX)]
    found += ["link %s (root namespace)" % n for n in _root_links()
              if n == BRIDGE or n.startswith("zcv-")]
    found += ["nft table %s (root namespace)" % " ".join(t) for t in _root_tables()
              if t and t[-1] == TABLE]
    if os.path.exists(REGISTRY):
        found.append("registry file %s" % REGISTRY)
    return found


def _kill_inside(ns, log):
    """SIGKILL every process inside ns (ours: nothing else runs in a zc-
    namespace) and wait until they are gone."""
    pids = ns_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
            log("killed pid %d left in %s" % (pid, ns))
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists("/proc/%d" % p) and _state(p) not in "ZX"]
        time.sleep(0.05)
    return pids


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2]
    except (OSError, ValueError):
        return "X"


def delete_namespace(ns, log=lambda m: None):
    stuck = _kill_inside(ns, log)
    if stuck:
        log("pids %s in %s did not die" % (stuck, ns))
    run([IP, "netns", "delete", ns], check=False)


def cleanup_leftovers(log=print):
    """Remove every zc-* namespace (processes inside first), zc links and
    zcchaos tables in the root namespace, and the registry.  Returns what
    is still left afterwards ([] on success)."""
    for ns in list_namespaces():
        if ns.startswith(NS_PREFIX) and ns != NET_NS:
            delete_namespace(ns, log)
            log("deleted namespace %s" % ns)
    if NET_NS in list_namespaces():
        delete_namespace(NET_NS, log)
        log("deleted namespace %s" % NET_NS)
    for n in _root_links():
        if n == BRIDGE or n.startswith("zcv-"):
            run([IP, "link", "delete", n], check=False)
            log("deleted link %s" % n)
    for t in _root_tables():
        if t and t[-1] == TABLE:
            run([NFT, "delete", "table"] + t, check=False)
            log("deleted nft table %s" % " ".join(t))
    if os.path.exists(REGISTRY):
        os.unlink(REGISTRY)
        log("removed %s" % REGISTRY)
    # A deleted namespace's links go once its last user is gone: wait a moment.
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers()


class Host:
    """One namespace with one address on the bridge."""

    def __init__(self, name, ns, addr):
        self.name = name  # logical name: broker1, cart2, stock1, clients, ctl
        self.ns = ns      # namespace name (zc-b1, ...)
        self.addr = addr  # its IPv4 address

    def __repr__(self):
        return "Host(%s %s %s)" % (self.name, self.ns, self.addr)


class Net:
    """The namespaces of one run and the partitions between them."""

    def __init__(self, log=lambda m: None):
        self.log = log
        self.created = []   # namespaces in creation order (torn down in reverse)
        self.hosts = {}     # logical name -> Host
        self.blocks = {}    # ns -> set of addresses it drops (in and out)

    # -- registry --
    def _save(self):
        tmp = REGISTRY + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "namespaces": self.created}, f)
        os.replace(tmp, REGISTRY)

    # -- set-up --
    def _add_ns(self, ns):
        run([IP, "netns", "add", ns])
        self.created.append(ns)
        self._save()
        run([IP, "-n", ns, "link", "set", "lo", "up"])

    def up(self, hosts):
        """Create zc-net with the bridge, then one namespace per (name, ns,
        last octet) in hosts, each with a veth into the bridge."""
        self._add_ns(NET_NS)
        run([IP, "-n", NET_NS, "link", "add", BRIDGE, "type", "bridge"])
        run([IP, "-n", NET_NS, "link", "set", BRIDGE, "up"])
        for name, ns, octet in hosts:
            addr = "%s.%d" % (SUBNET, octet)
            self._add_ns(ns)
            veth = "zcv-" + ns[len(NS_PREFIX):]
            run([IP, "-n", NET_NS, "link", "add", veth, "type", "veth",
                 "peer", "name", "eth0", "netns", ns])
            run([IP, "-n", NET_NS, "link", "set", veth, "master", BRIDGE, "up"])
            run([IP, "-n", ns, "addr", "add", "%s/%d" % (addr, PREFIX), "dev", "eth0"])
            run([IP, "-n", ns, "link", "set", "eth0", "up"])
            self.hosts[name] = Host(name, ns, addr)
        self.wait_links()

    def wait_links(self, timeout=10):
        """Wait until every host's eth0 is up and its address usable (DAD does
        not apply to IPv4, but the bridge port needs a moment to forward)."""
        deadline = time.monotonic() + timeout
        while True:
            down = []
            for h in self.hosts.values():
                out = run([IP, "-n", h.ns, "-o", "link", "show", "eth0"], check=False).stdout
                if "LOWER_UP" not in out:
                    down.append(h.ns)
            if not down:
                return
            if time.monotonic() >= deadline:
                raise NetError("links not up after %.0f s: %s" % (timeout, ", ".join(down)))
            time.sleep(0.05)

    def host(self, name):
        return self.hosts[name]

    def exec_prefix(self, name):
        """argv prefix that runs a command inside host `name`'s namespace."""
        return [IP, "netns", "exec", self.hosts[name].ns]

    # -- partitions --
    def cut(self, a, b):
        """Drop all traffic between hosts a and b (by logical name), both ways.
        Takes effect at the next apply()."""
        ha, hb = self.hosts[a], self.hosts[b]
        self.blocks.setdefault(ha.ns, set()).add(hb.addr)
        self.blocks.setdefault(hb.ns, set()).add(ha.addr)

    def cut_groups(self, left, right):
        """Cut every host of `left` from every host of `right`."""
        for a in left:
            for b in right:
                self.cut(a, b)

    def apply(self):
        """Install the pending cuts: one zcchaos table per affected namespace,
        replaced atomically (nft -f runs one transaction)."""
        for ns, addrs in sorted(self.blocks.items()):
            elems = ", ".join(sorted(addrs))
            script = (
                "table inet %(t)s\n"
                "delete table inet %(t)s\n"
                "table inet %(t)s {\n"
                "  set blocked { type ipv4_addr; elements = { %(e)s } }\n"
                "  chain input { type filter hook input priority -10; policy accept;"
                " ip saddr @blocked drop; }\n"
                "  chain output { type filter hook output priority -10; policy accept;"
                " ip daddr @blocked drop; }\n"
                "}\n" % {"t": TABLE, "e": elems})
            run([IP, "netns", "exec", ns, NFT, "-f", "-"], input=script)

    def rules(self):
        """{namespace: [blocked addresses]} as installed now (read back from nft)."""
        out = {}
        for ns in self.created:
            r = run([IP, "netns", "exec", ns, NFT, "-j", "list", "set", "inet", TABLE, "blocked"],
                    check=False)
            if r.returncode != 0:
                continue
            try:
                items = json.loads(r.stdout)["nftables"]
                elems = [x for i in items if "set" in i for x in i["set"].get("elem", [])]
            except (ValueError, KeyError):
                elems = ["?"]
            out[ns] = sorted(str(e) for e in elems)
        return out

    def heal(self):
        """Remove every zcchaos table (in every namespace of this run)."""
        self.blocks = {}
        for ns in self.created:
            r = run([IP, "netns", "exec", ns, NFT, "list", "tables"], check=False)
            if (" %s" % TABLE) in r.stdout:
                run([IP, "netns", "exec", ns, NFT, "delete", "table", "inet", TABLE], check=False)
        left = self.rules()
        if left:
            raise NetError("zcchaos rules still present after heal: %s" % left)

    # -- aimed drops --
    def drop(self, name, input=(), output=()):
        """Install host `name`'s aimed drops (nft match expressions; each gets
        `drop` appended), replacing any it had: one transaction."""
        ns = self.hosts[name].ns
        script = ("table inet %(t)s\ndelete table inet %(t)s\ntable inet %(t)s {\n"
                  "  chain input { type filter hook input priority -20; policy accept;%(i)s }\n"
                  "  chain output { type filter hook output priority -20; policy accept;%(o)s }\n"
                  "}\n" % {"t": DROP_TABLE,
                           "i": "".join(" %s drop;" % x for x in input),
                           "o": "".join(" %s drop;" % x for x in output)})
        run([IP, "netns", "exec", ns, NFT, "-f", "-"], input=script)

    def undrop(self, name):
        """Remove host `name`'s aimed drops (if any)."""
        ns = self.hosts[name].ns
        r = run([IP, "netns", "exec", ns, NFT, "list", "tables"], check=False)
        if (" %s" % DROP_TABLE) in r.stdout:
            run([IP, "netns", "exec", ns, NFT, "delete", "table", "inet", DROP_TABLE],
                check=False)

    def drops(self):
        """Namespaces that have aimed drops installed now."""
        out = []
        for ns in self.created:
            r = run([IP, "netns", "exec", ns, NFT, "list", "tables"], check=False)
            if (" %s\n" % DROP_TABLE) in r.stdout + "\n":
                out.append(ns)
        return out

    def heal_drops(self):
        """Remove every aimed drop of this run; raise if any is left."""
        for name in list(self.hosts):
            self.undrop(name)
        left = self.drops()
        if left:
            raise NetError("zcchaosd rules still present after heal: %s" % left)

    # -- tear-down --
    def teardown(self):
        """Delete every namespace this run created (processes inside are
        killed first) and the registry; returns leftovers of this run ([] if
        clean)."""
        for ns in reversed(self.created):
            delete_namespace(ns, self.log)
        gone = set(list_namespaces())
        still = [ns for ns in self.created if ns in gone]
        self.created = [ns for ns in self.created if ns in gone]
        if not self.created and os.path.exists(REGISTRY):
            os.unlink(REGISTRY)
        return still
