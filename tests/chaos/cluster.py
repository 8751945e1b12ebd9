"""cluster: the zcart daemons of a chaos run, each inside its own namespace.

Design
------
The command lines are those of deploy/local/zcart-cluster (the flags it
gives every stock, broker and cart), run as `ip netns exec NS argv`
(`ip netns exec` execs in place, so the pid we hold is the daemon's own),
with the addresses of net.py instead of loopback ports:

    broker i  raft ADDR:7011  clients tcp://ADDR:7021  carts tcp://ADDR:7031
    stock j   tcp://ADDR:7041

plus the chaos timings (CHAOS_BROKER_ARGS below, chosen so that faults of a
few seconds matter within a run).  Each daemon has RUNDIR/NAME/data and
RUNDIR/NAME/log (appended across restarts, a header line per start), is
started in a session of its own (so a Ctrl-C reaches only the harness,
which then tears down in order), and is restarted with exactly the same
argv.

A daemon is `running`, `paused` (SIGSTOP) or `dead`.  `expect_dead` is set
by whoever kills it on purpose (the nemesis); `unexpected_exits()` reports
every daemon that died without it, with its exit status -- a crash the run
must report -- except an exit whose status is in its `tolerated_exits`
(74 while the disk-full fault holds its disk: `tolerated` lists those).

With `disk_size` (the disk-full kind, disk.py), every replica's and cart
node's data directory is a tmpfs of that size, and the replicas write
their raft log in 64 KiB segments, so a full disk is met within a fault.

STATUS comes from the real CLI, `zcart --json status`, run in the zc-ctl
namespace, which no partition touches.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import disk as diskmod

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "deploy", "local"))
from zcproc import proc_state  # noqa: E402
import zcdaemon  # noqa: E402
DEFAULT_BIN = os.path.join(REPO, "build", "bin")
CATALOG_PRODUCTS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear",
                    "kiwi", "plum", "peach", "melon"]

# Broker timings for chaos (docs/chaos.md, "Running it"):
#   --cart-liveness 2500    a cart node silent 2.5 s trips its carts' breakers
#                           (not 1.5 s: delay-cart-replies holds a node's
#                           packets ~1.4 s, HELLOs included, and TCP's resend
#                           backoff sometimes makes that ~3 s; a breaker open
#                           then refuses the retries the fault is there for)
#   --cart-lost-after 8000  silent 8 s, its sessions move to fresh carts
#                           (CART_LOST): faults of 4..12 s land on both sides
#   --session-ttl 20000     an abandoned session (restarted shell) expires
#                           within a run; live shells renew every 3 s
#   --breaker-wait-max 8000 breakers re-probe within a fault's length
CHAOS_BROKER_ARGS = ["--cart-liveness", "2500", "--cart-lost-after", "8000",
                     "--session-ttl", "20000", "--breaker-wait-max", "8000"]
# Cart nodes: HELLO every 250 ms (well inside --cart-liveness); a stock check
# may outlive one 1 s client try (1500 ms, still inside the broker's 2 s cart
# timeout), so a retry of an add whose check is slow joins it (in-flight joins).
# --broker-liveness 8000: a replica silent 8 s is reconnected (the default,
# 3 hellos, is 750 ms): stale-reset holds the old leader's packets to a cart
# for up to ~6 s (TCP resends them ~1.4, ~3.0 and ~6.2 s after the send), and
# a reconnect would throw the held RESET away.  (4000 was too short on the
# loaded machine: the steps took 3.3-3.7 s and the resend came at 6.2 s.)
CHAOS_CART_ARGS = ["--hello-interval", "250", "--stock-timeout", "1500",
                   "--broker-liveness", "8000"]
RAFT_PORT, CLIENT_PORT, CART_PORT, STOCK_PORT = 7011, 7021, 7031, 7041


class ClusterError(Exception):
    pass




class Daemon:
    """One zcart daemon in its namespace."""

    def __init__(self, name, kind, host, argv, run_dir, net):
        self.name = name        # broker1, cart1, stock1
        self.kind = kind        # broker | cart | stock
        self.host = host        # net.Host
        self.argv = argv        # the daemon's argv (without the netns prefix)
        self.dir = os.path.join(run_dir, name)
        self.log_path = os.path.join(self.dir, "log")
        self.data = os.path.join(self.dir, "data")
        self.net = net
        self.env = None         # environment of its process (None: the harness's own)
        self.proc = None        # subprocess.Popen of the current incarnation
        self.starts = 0         # how many times it was started
        self.expect_dead = False  # killed on purpose (or stopped): not a crash
        self.exits = []         # (time, status) of unexpected exits seen
        self.tolerated_exits = set()  # exit statuses that are no crash now (disk-full: 74)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def clock_file(self):
        """Its clock shim's offset file (clockshim.c): milliseconds added to
        its wall clock."""
        return os.path.join(self.dir, "clock_offset_ms")

    def set_clock_offset(self, ms):
        """Jump its wall clock by ms from now on (0: the real clock again)."""
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % int(ms))
        os.replace(tmp, self.clock_file)

    def state(self):
        if self.proc is None:
            return "dead"
        if self.proc.poll() is not None:
            return "dead"
        return proc_state(self.proc.pid)

    def start(self):
        if self.state() != "dead":
            raise ClusterError("%s is already %s" % (self.name, self.state()))
        os.makedirs(self.data, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            logf.write(("=== chaos %s: start #%d in %s: %s\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%S"), self.starts + 1, self.host.ns,
                " ".join(self.argv))).encode())
            logf.flush()
            self.proc = subprocess.Popen(self.net.exec_prefix(self.host.name) + self.argv,
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.dir, close_fds=True, env=self.env)
        self.starts += 1
        self.expect_dead = False

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait_dead(self, timeout):
        deadline = time.monotonic() + timeout
        while self.state() != "dead":
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        if self.proc:
            self.proc.wait()
        return True

    def kill(self):
        """SIGKILL and wait until gone."""
        self.expect_dead = True
        self.signal(signal.SIGKILL)
        if not self.wait_dead(10):
            raise ClusterError("%s (pid %s) survived SIGKILL" % (self.name, self.pid))

    def pause(self):
        self.signal(signal.SIGSTOP)
        self._wait_state("paused")

    def resume(self):
        self.signal(signal.SIGCONT)
        self._wait_state("running")

    def _wait_state(self, want):
        deadline = time.monotonic() + 5
        while self.state() != want:
            if self.state() == "dead":
                raise ClusterError("%s died while waiting for it to be %s" % (self.name, want))
            if time.monotonic() >= deadline:
                raise ClusterError("%s is %s, not %s" % (self.name, self.state(), want))
            time.sleep(0.005)

    def stop(self, timeout=10.0):
        """SIGCONT + SIGTERM, SIGKILL after timeout; True if it stopped on SIGTERM
        with exit status 0."""
        if self.state() == "dead":
            if self.proc:
                self.proc.wait()
            return True
        self.expect_dead = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.wait_dead(timeout):
            return self.proc.returncode == 0
        self.signal(signal.SIGKILL)
        self.wait_dead(10)
        return False


class Cluster:
    """Stock, broker replicas and cart nodes of one run."""

    def __init__(self, net, run_dir, bin_dir=None, replicas=3, cart_nodes=2, slots=8, stock=1,
                 catalog=None, broker_args=(), cart_args=(), disk_size=None, log=print):
        self.net = net
        self.dir = run_dir
        self.bin = os.path.abspath(bin_dir or os.environ.get("ZCART_BIN") or DEFAULT_BIN)
        self.n_replicas, self.n_carts, self.slots, self.n_stock = replicas, cart_nodes, slots, stock
        self.log = log
        self.catalog = catalog or os.path.join(run_dir, "catalog.csv")
        self.disk_size = disk_size  # e.g. "256m": data directories on tmpfs (disk.py)
        self.broker_args = list(CHAOS_BROKER_ARGS) + list(broker_args)
        if disk_size:
            self.broker_args.append("--raft-segment-size=64K")
        self.cart_args = list(CHAOS_CART_ARGS) + list(cart_args)
        self.daemons = {}   # name -> Daemon, in start order
        self.lock = threading.Lock()  # serialises start/kill/pause of one daemon
        self.disks = []     # data directories mounted as tmpfs (disk_size)
        self.tolerated = []  # (time, name, status) of exits tolerated_exits allowed

    # -- the plan --
    @staticmethod
    def hosts_for(replicas, cart_nodes, stock):
        """(logical name, namespace, last octet) of every host a run needs."""
        hosts = [("broker%d" % i, "zc-b%d" % i, 10 + i) for i in range(1, replicas + 1)]
        hosts += [("cart%d" % k, "zc-c%d" % k, 20 + k) for k in range(1, cart_nodes + 1)]
        hosts += [("stock%d" % j, "zc-s%d" % j, 30 + j) for j in range(1, stock + 1)]
        hosts += [("clients", "zc-cli", 41), ("ctl", "zc-ctl", 51)]
        return hosts

    def replica_ids(self):
        return list(range(1, self.n_replicas + 1))

    def broker_name(self, rid):
        return "broker%d" % rid

    def client_endpoint(self, rid):
        return "tcp://%s:%d" % (self.net.host(self.broker_name(rid)).addr, CLIENT_PORT)

    @property
    def brokers(self):
        """Client endpoints of every replica (what clients get as --brokers)."""
        return [self.client_endpoint(r) for r in self.replica_ids()]

    def cart_names(self):
        return ["cart%d" % k for k in range(1, self.n_carts + 1)]

    def stock_names(self):
        return ["stock%d" % j for j in range(1, self.n_stock + 1)]

    def _write_catalog(self):
        if os.path.exists(self.catalog):
            return
        with open(self.catalog, "w") as f:
            f.write("# chaos catalog: plenty of everything, so OUT_OF_STOCK never happens\n")
            for p in CATALOG_PRODUCTS:
                f.write("%s,1000000000\n" % p)

    def _keys(self):
        """Secure by default (docs/security.md): `zcart keygen DIR/keys` and
        ZCART_SERVER_KEY / ZCART_CERT (the client key) in this process's
        environment, which every zcart CLI it starts (status, the workload's
        shells) inherits.  ZCART_CHAOS_INSECURE=1 runs every daemon with
        --insecure instead.  Returns the keys directory, None if insecure."""
        if os.environ.get("ZCART_CHAOS_INSECURE") == "1":
            os.environ["ZCART_INSECURE"] = "1"  # the CLI: plain connections
            return None
        k = os.path.join(self.dir, "keys")
        r = subprocess.run([os.path.join(self.bin, "zcart"), "keygen", k] + list(self.cart_names())
                           + ["--replicas", str(self.n_replicas)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise ClusterError("zcart keygen failed: %s" % r.stderr.strip())
        os.environ["ZCART_SERVER_KEY"] = os.path.join(k, "replica.cert")
        os.environ["ZCART_CERT"] = os.path.join(k, "client.cert_secret")
        return k

    def build(self):
        """Create the Daemon objects (nothing runs yet)."""
        self._write_catalog()
        keys = self._keys()
        ep = {}
        for r in self.replica_ids():
            a = self.net.host(self.broker_name(r)).addr
            ep[r] = {"id": r, "raft": "%s:%d" % (a, RAFT_PORT),
                     "client": "tcp://%s:%d" % (a, CLIENT_PORT),
                     "cart": "tcp://%s:%d" % (a, CART_PORT)}
        stocks = ["tcp://%s:%d" % (self.net.host(s).addr, STOCK_PORT) for s in self.stock_names()]
        for s, e in zip(self.stock_names(), stocks):
            d = os.path.join(self.dir, s, "data")
            argv = zcdaemon.stock_argv(self.bin, e, d, self.catalog, keys)
            self.daemons[s] = Daemon(s, "stock", self.net.host(s), argv, self.dir, self.net)
        for r in self.replica_ids():
            name = self.broker_name(r)
            d = os.path.join(self.dir, name, "data")
            argv = zcdaemon.broker_argv(self.bin, r, d, [ep[m] for m in self.replica_ids()],
                                        keys) + self.broker_args
            self.daemons[name] = Daemon(name, "broker", self.net.host(name), argv, self.dir,
                                        self.net)
        for c in self.cart_names():
            d = os.path.join(self.dir, c, "data")
            argv = zcdaemon.cart_argv(self.bin, c, self.slots, d,
                                      [ep[r]["cart"] for r in self.replica_ids()], stocks,
                                      keys) + self.cart_args
            self.daemons[c] = Daemon(c, "cart", self.net.host(c), argv, self.dir, self.net)
        for d in self.daemons.values():
            if not os.access(d.argv[0], os.X_OK):
                raise ClusterError("%s is not an executable (build first: cmake --build build)"
                                   % d.argv[0])
        if self.disk_size:
            for d in self.daemons.values():
                if d.kind in ("broker", "cart"):
                    diskmod.mount(d.data, self.disk_size)
                    self.disks.append(d.data)
        shim = self._clock_shim()
        for d in self.daemons.values():
            if d.kind in ("broker", "cart"):  # clock-jump's targets (nemesis.py)
                d.env = dict(os.environ, LD_PRELOAD=shim, ZCART_CLOCK_OFFSET_FILE=d.clock_file)
        with open(os.path.join(self.dir, "cluster.json"), "w") as f:
            json.dump({"brokers": self.brokers, "procs": [
                {"name": d.name, "kind": d.kind, "ns": d.host.ns, "addr": d.host.addr,
                 "argv": d.argv} for d in self.daemons.values()]}, f, indent=2)

    def _clock_shim(self):
        """Build tests/chaos/clockshim.c into RUNDIR/clockshim.so (the
        per-process wall clock of the clock-jump fault); its path."""
        out = os.path.join(self.dir, "clockshim.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                            "-o", out, os.path.join(HERE, "clockshim.c"), "-ldl"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise ClusterError("cannot build the clock shim: %s" % r.stderr.strip()[-500:])
        return out

    def daemon(self, name):
        return self.daemons[name]

    def broker(self, rid):
        return self.daemons[self.broker_name(rid)]

    # -- lifecycle --
    def start_all(self, wait=30.0):
        for d in self.daemons.values():
            d.start()
        problem = self.wait_ready(wait)
        if problem:
            raise ClusterError("the cluster did not come up within %.0f s: %s" % (wait, problem))

    def wait_ready(self, timeout):
        """None once every replica answers, one ready leader exists and every
        replica counts all carts; else the last problem at the deadline."""
        deadline = time.monotonic() + timeout
        problem = "not checked"
        want = self.n_carts * self.slots
        while time.monotonic() < deadline:
            dead = [d.name for d in self.daemons.values() if d.state() == "dead"]
            if dead:
                return "exited: %s" % ", ".join(dead)
            st = self.status()
            reps = (st or {}).get("replicas") or []
            if st is None:
                problem = "no answer from zcart status"
            elif not all(r.get("reachable") for r in reps) or len(reps) != self.n_replicas:
                problem = "replicas not answering"
            elif len([r for r in reps if r.get("role") == "leader" and r.get("ready") == 1]) != 1:
                problem = "no ready leader (roles %s)" % [r.get("role") for r in reps]
            elif any(r.get("carts_total") != want for r in reps):
                problem = "carts registered: %s of %d" % ([r.get("carts_total") for r in reps], want)
            else:
                return None
            time.sleep(0.2)
        return problem

    def restart(self, name):
        with self.lock:
            d = self.daemons[name]
            if d.state() == "dead":
                d.start()

    def stop_all(self, timeout=10.0):
        """Stop carts, brokers, stock (reverse start order); names that needed
        SIGKILL or exited non-zero."""
        bad = []
        for d in reversed(list(self.daemons.values())):
            if d.proc is None:
                continue
            was_dead = d.state() == "dead"
            ok = d.stop(timeout)
            if not ok and not was_dead:
                bad.append("%s (exit %s)" % (d.name, d.proc.returncode))
        return bad

    def kill_all(self):
        """Interrupted or failed run: SIGKILL whatever still runs."""
        for d in self.daemons.values():
            if d.proc and d.state() != "dead":
                d.expect_dead = True
                d.signal(signal.SIGCONT)
                d.signal(signal.SIGKILL)
        for d in self.daemons.values():
            if d.proc:
                d.wait_dead(10)

    def unmount_disks(self):
        """After every daemon is gone: unmount the data tmpfs (disk_size)."""
        for path in self.disks:
            diskmod.unmount(path)
        self.disks = []

    def unexpected_exits(self):
        """Daemons found dead that nobody killed: [(name, exit status)]; each
        is reported once (expect_dead is set once reported).  An exit in the
        daemon's tolerated_exits goes to `tolerated` instead."""
        out = []
        for d in self.daemons.values():
            if d.proc is not None and not d.expect_dead and d.proc.poll() is not None:
                d.expect_dead = True
                if d.proc.returncode in d.tolerated_exits:
                    self.tolerated.append((time.time(), d.name, d.proc.returncode))
                    continue
                d.exits.append((time.time(), d.proc.returncode))
                out.append((d.name, d.proc.returncode))
        return out

    # -- status --
    def admin_args(self):
        """The CLI options of an admin command: the admin key (none on an
        --insecure cluster)."""
        k = os.path.join(self.dir, "keys", "admin.cert_secret")
        return [] if os.environ.get("ZCART_CHAOS_INSECURE") == "1" else ["--cert", k]

    def cli_argv(self, host, args, timeout_ms=1500, replicas=None):
        """The argv of `zcart --json --brokers ... ARGS` inside host's namespace;
        replicas: the replica ids it may talk to (default: all)."""
        eps = self.brokers if replicas is None else [self.client_endpoint(r) for r in replicas]
        return self.net.exec_prefix(host) + [os.path.join(self.bin, "zcart"), "--brokers",
                                             ",".join(eps), "--json", "--timeout",
                                             str(timeout_ms)] + list(args)

    def cli(self, host, args, timeout_ms=1500, replicas=None):
        """`zcart --json --brokers ... ARGS` run inside host's namespace; the
        parsed last line, or None."""
        argv = self.cli_argv(host, args, timeout_ms, replicas)
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout_ms / 1000.0 + 10)
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            return None

    def status(self, timeout_ms=1000):
        return self.cli("ctl", ["status"], timeout_ms)

    def leader(self, st=None):
        """The replica id of the ready leader (highest term if several claim
        it), or None."""
        st = st if st is not None else self.status()
        reps = [r for r in (st or {}).get("replicas", [])
                if r.get("reachable") and r.get("role") == "leader" and r.get("ready") == 1]
        if not reps:
            return None
        return max(reps, key=lambda r: r.get("term", 0))["id"]

    def wait_leader(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rid = self.leader()
            if rid is not None:
                return rid
            time.sleep(0.1)
        return None

    def converged(self, st=None, quiet=True):
        """(True, replicas) when every replica answers, one ready leader, every
        one at the leader's applied index and digest, every cart registered
        -- and, if quiet, none draining and no breaker open; else (False,
        why)."""
        st = st if st is not None else self.status()
        reps = (st or {}).get("replicas") or []
        why = zcdaemon.disagreement(reps, self.n_replicas)
        if why:
            return False, why
        ld = [r for r in reps if r.get("role") == "leader" and str(r.get("ready")) == "1"][0]
        want = self.n_carts * self.slots
        if any(r.get("carts_total") != want for r in reps):
            return False, "carts registered %s of %d" % ([r.get("carts_total") for r in reps], want)
        if quiet:
            if ld.get("carts_draining"):
                return False, "%s carts draining" % ld.get("carts_draining")
            if ld.get("breakers_not_closed"):
                return False, "%s breakers not closed" % ld.get("breakers_not_closed")
        return True, reps

    def wait_converged(self, timeout, quiet=True, stable=1.0):
        """Wait until converged() holds twice, `stable` seconds apart (a
        lease expiry or a drain may still be on its way); (ok, replicas or
        why)."""
        deadline = time.monotonic() + timeout
        why = "not checked"
        while time.monotonic() < deadline:
            ok, what = self.converged(quiet=quiet)
            if ok:
                time.sleep(stable)
                ok2, what2 = self.converged(quiet=quiet)
                if ok2 and [(r["applied_index"], r["digest"]) for r in what2] == \
                        [(r["applied_index"], r["digest"]) for r in what]:
                    return True, what2
                why = "still changing"
                continue
            why = what
            time.sleep(0.25)
        return False, why

    # -- dumps --
    def dumps(self):
        """Every replica's --dump-state and every cart node's, for stopped
        daemons: (replica dumps by id, flat list of cart slot dumps, errors)."""
        replicas, carts, errors = {}, [], []
        for r in self.replica_ids():
            d = self.broker(r)
            out = subprocess.run([os.path.join(self.bin, "zcart-broker"), "--dump-state",
                                  "--data", d.data], capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            try:
                replicas[r] = json.loads(out.stdout)
            except ValueError:
                errors.append("broker%d dump: exit %d: %s" % (r, out.returncode, out.stderr.strip()))
        for c in self.cart_names():
            d = self.daemons[c]
            out = subprocess.run([os.path.join(self.bin, "zcart-cart"), "--dump-state", "--data",
                                  d.data, "--slots", str(self.slots), "--name", c],
                                 capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            try:
                for s in json.loads(out.stdout)["slots"]:
                    s["node"] = c
                    carts.append(s)
            except (ValueError, KeyError):
                errors.append("%s dump: exit %d: %s" % (c, out.returncode, out.stderr.strip()))
        return replicas, carts, errors
