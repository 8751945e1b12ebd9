"""harness: real zcart processes on loopback for the integration tests.

Design
------
Every test runs against real daemons started by ``deploy/local/zcart-cluster``
(the same tool operators use), in its own run directory under
``/tmp/zcart-it/`` and on its own block of 100 ports, so test files can run
in parallel (``ctest -j2``) and next to other clusters on the machine:

* **Ports.**  ``allocate_run()`` takes an exclusive flock on
  ``/tmp/zcart-it/ports.lock``, advances a counter kept in that directory
  over blocks [P, P+99] between 20000 and 32699 (below the kernel's
  ephemeral range, so no outgoing connection can squat them; above the
  conformance suite's 11000-19999, whose clusters are probed under another
  lock: a shared range let both take one block) and returns the
  first block whose every port bind-probes free.  Blocks of the other tests
  are taken under the same lock, and a block stays reserved (its
  ``owner`` file names a live pid) until the owner releases it.  A cluster
  uses P+11..P+49 (see zcart-cluster); P+50..P+99 are for sockets a test
  binds itself (fake brokers, fake stock), handed out by ``Cluster.port()``.

* **Teardown.**  ``Cluster.down()`` runs ``zcart-cluster down`` and then
  SIGKILLs any pid it still finds; it is registered with ``atexit`` as well
  as called from the test's cleanup, and SIGTERM is turned into SystemExit
  (as SIGINT already is into KeyboardInterrupt) so a TERM still tears down.  A test process
  that died by SIGKILL leaves its run directory with a dead owner pid: the
  next harness start sweeps such directories (``down``, logs kept).  Only
  the newest 20 kept run directories (failed or killed tests) are kept.

* **Waiting.**  ``wait_until(cond, timeout, what)`` polls ``cond`` until it
  returns something truthy and returns that; at the deadline it fails with
  ``what`` and the last value or exception seen.  Tests never sleep and hope.

* **Talking.**  ``Cluster.cli(...)`` runs the real ``zcart`` CLI with
  ``--json`` and returns (exit status, parsed object); ``CliShell`` keeps one
  ``zcart --json shell`` (one session) running and feeds it commands, one
  JSON result per line, for load that fails over the way users' does
  (teardown kills it).  ``Dealer`` is a raw
  ZeroMQ DEALER speaking zcproto, for pipelining, retries with a chosen seq
  and garbage.  ``FakeRouter`` binds a ROUTER a test controls (a fake broker
  replica or a fake stock service for a cart node).

* **Extra processes.**  ``start_cart_node`` and ``start_extra_broker`` (a
  replica that joins with ``--join``, on ports from P+50..P+99) start
  daemons the cluster tool does not know, in the run directory; ``down``
  stops them whatever the test did.  ``converged(c)`` is the STATUS of
  every replica once one leads and all share its applied index and digest.

* **Security.**  Clusters run secure (CurveZMQ, keys per role) unless
  ``ZCART_IT_INSECURE=1`` or ``Cluster(secure=False)``.  The CLI, the bench
  and ``CliShell`` get the client key (the admin key for ``admin``
  commands); ``Dealer`` and ``FakeRouter`` take the key of the newest live
  cluster that fits their endpoint (client port: client; cart port: the
  cart node named by the routing id, else cart1's; stock: cart1's) unless
  given ``cert=``; ``Cluster.cart_key(name)`` makes a key for a new cart node.

* **Failure reports.**  ``main()`` runs unittest with a result class that,
  when a test fails, prints the tail of every process log of every cluster
  the test started and keeps the run directory; passing tests' run
  directories are deleted (kept too with ZCART_IT_KEEP=1).
"""

import atexit
import fcntl
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import zmq
import zmq.utils.monitor

import zcproto as zp

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SECURE = os.environ.get("ZCART_IT_INSECURE") != "1"
CLUSTER_TOOL = os.path.join(REPO, "deploy", "local", "zcart-cluster")
sys.path.insert(0, os.path.dirname(CLUSTER_TOOL))
import zcproc  # noqa: E402  (deploy/local: when a process is gone)
import zcdaemon  # noqa: E402  (deploy/local: daemon command lines, convergence)
BIN = os.path.abspath(os.environ.get("ZCART_BIN") or os.path.join(REPO, "build", "bin"))
ROOT = os.environ.get("ZCART_IT_ROOT", "/tmp/zcart-it")
PYTHON = "/usr/bin/python3"

PORT_MIN, PORT_MAX, PORT_BLOCK = 20000, 32699, 100

# Every cluster this process started, torn down at exit whatever happens.
_live_clusters = []
_zctx = None


def zctx():
    global _zctx
    if _zctx is None:
        _zctx = zmq.Context()
    return _zctx


# --- waiting ------------------------------------------------------------------------

class Timeout(AssertionError):
    pass


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until truthy; return its value.  Fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = cond()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 -- remembered and reported
            last = e
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1f s waiting for %s; last: %r" % (timeout, what, last))
        time.sleep(interval)


# --- ports and run directories -------------------------------------------------------------

def _pid_alive(pid):
    """False once every thread of pid is a zombie or gone (zcproc)."""
    return zcproc.proc_state(pid) != "dead"


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _sweep_orphans():
    """Stop and delete run dirs whose owner process is gone (called under the lock)."""
    for entry in os.listdir(ROOT):
        d = os.path.join(ROOT, entry)
        owner = os.path.join(d, "owner")
        if not os.path.isdir(d) or not os.path.exists(owner):
            continue
        try:
            with open(owner) as f:
                pid = int(f.read().split()[0])
        except (ValueError, IndexError, FileNotFoundError):
            continue
        if _pid_alive(pid):
            continue
        subprocess.run([PYTHON, CLUSTER_TOOL, "down", "--dir", d, "--stop-timeout", "3"],
                       stdin=subprocess.DEVNULL, capture_output=True)
        os.unlink(owner)  # keeps the logs for a post-mortem; frees the port block


KEEP_FAILED = 20


def _prune_kept():
    """Delete all but the newest KEEP_FAILED ownerless run dirs (kept logs of
    failed or killed tests); called under the lock."""
    kept = []
    for entry in os.listdir(ROOT):
        d = os.path.join(ROOT, entry)
        if os.path.isdir(d) and not os.path.exists(os.path.join(d, "owner")):
            kept.append((os.path.getmtime(d), d))
    for _, d in sorted(kept)[:-KEEP_FAILED]:
        shutil.rmtree(d, ignore_errors=True)


def _reserved_bases():
    bases = set()
    for entry in os.listdir(ROOT):
        owner = os.path.join(ROOT, entry, "owner")
        try:
            with open(owner) as f:
                pid, base = (int(x) for x in f.read().split()[:2])
        except (ValueError, OSError):
            continue
        if _pid_alive(pid):
            bases.add(base)
    return bases


def allocate_run(label):
    """(run dir, base port): a fresh directory and a free block of 100 ports."""
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "ports.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _sweep_orphans()
        _prune_kept()
        counter = os.path.join(ROOT, "ports.next")
        try:
            with open(counter) as f:
                base = int(f.read())
        except (FileNotFoundError, ValueError):
            base = PORT_MIN + PORT_BLOCK * random.randrange((PORT_MAX - PORT_MIN) // PORT_BLOCK)
        reserved = _reserved_bases()
        for _ in range((PORT_MAX - PORT_MIN) // PORT_BLOCK):
            if base + PORT_BLOCK - 1 > PORT_MAX or base < PORT_MIN:
                base = PORT_MIN
            if base not in reserved and all(_port_free(p) for p in range(base + 1, base + PORT_BLOCK)):
                break
            base += PORT_BLOCK
        else:
            raise RuntimeError("no free block of %d ports in %d..%d" % (PORT_BLOCK, PORT_MIN, PORT_MAX))
        with open(counter, "w") as f:
            f.write(str(base + PORT_BLOCK))
        d = os.path.join(ROOT, "%s-%d-%d" % (label, os.getpid(), base))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "owner"), "w") as f:
            f.write("%d %d\n" % (os.getpid(), base))
        return d, base


# --- the cluster ------------------------------------------------------------------------------

class Cluster:
    """One local cluster run by zcart-cluster.  Use as a context manager, or via
    ClusterTestCase.cluster(), which tears it down after the test."""

    def __init__(self, label="it", replicas=1, cart_nodes=2, slots=4, stock=1, catalog=None,
                 stock_delay=None, hello_interval=200, broker_args=(), cart_args=(),
                 stock_args=(), log_level=None, secure=None, gateways=0, gateway_args=()):
        self.label = label
        self.secure = SECURE if secure is None else secure
        self.replicas, self.cart_nodes, self.slots, self.stock = replicas, cart_nodes, slots, stock
        self.catalog = catalog
        self.stock_delay = stock_delay
        self.hello_interval = hello_interval
        self.broker_args = list(broker_args)
        self.cart_args = list(cart_args)
        self.stock_args = list(stock_args)
        self.gateways = gateways
        self.gateway_args = list(gateway_args)
        self.log_level = log_level
        self.dir = None
        self.base = None
        self.plan = None
        self.extra = []           # Popen of processes the test started itself
        self.clients = []         # Popen of client programs (CliShell) still to reap
        self._next_port = 50

    # -- lifecycle --
    def up(self):
        self.dir, self.base = allocate_run(self.label)
        _live_clusters.append(self)
        return self._up()

    def restart_all(self):
        """`zcart-cluster down` then `up` again on the same data and ports
        (a clean stop of every process, then the same cluster again)."""
        r = self.tool("down", "--stop-timeout", "5", check=False)
        if r.returncode != 0:
            raise AssertionError("zcart-cluster down failed: %s%s" % (r.stdout, r.stderr))
        return self._up()

    def _up(self):
        args = ["up", "--replicas", str(self.replicas), "--cart-nodes", str(self.cart_nodes),
                "--slots", str(self.slots), "--stock", str(self.stock),
                "--base-port", str(self.base), "--bin", BIN,
                "--hello-interval", str(self.hello_interval)]
        if self.catalog:
            args += ["--catalog", self.catalog]
        if self.stock_delay:
            args += ["--stock-delay", self.stock_delay]
        if self.log_level:
            args += ["--log-level", self.log_level]
        args += ["--broker-arg=" + a for a in self.broker_args]
        args += ["--cart-arg=" + a for a in self.cart_args]
        args += ["--stock-arg=" + a for a in self.stock_args]
        args += ["--gateways", str(self.gateways)]
        args += ["--gateway-arg=" + a for a in self.gateway_args]
        if not self.secure:
            args.append("--insecure")
        r = self.tool(*args, check=False)
        if r.returncode != 0:
            raise AssertionError("zcart-cluster up failed (%d):\n%s\n%s"
                                 % (r.returncode, r.stdout, r.stderr))
        with open(os.path.join(self.dir, "cluster.json")) as f:
            self.plan = json.load(f)
        return self

    def down(self):
        if self.dir is None:
            return
        for p in self.clients:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.clients = []
        for p in self.extra:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        self.tool("down", "--stop-timeout", "5", check=False)
        for p in self.extra:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for name in self.names():
            pid = self.pid(name)
            if pid and _pid_alive(pid) and self._is_ours(pid):
                os.kill(pid, signal.SIGKILL)
        owner = os.path.join(self.dir, "owner")
        if os.path.exists(owner):
            os.unlink(owner)
        if self in _live_clusters:
            _live_clusters.remove(self)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    def tool(self, *args, check=True):
        r = subprocess.run([PYTHON, CLUSTER_TOOL] + list(args) + ["--dir", self.dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("zcart-cluster %s failed (%d): %s%s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    # -- processes --
    def names(self):
        """Every process name: the tool's, then those of start_cart_node() and
        start_extra_broker()."""
        if not self.plan:
            return []
        extra = [p.zc_name for p in self.extra]
        return [p["name"] for p in self.plan["procs"]] + extra

    def pid(self, name):
        try:
            with open(os.path.join(self.dir, name, "pid")) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return None

    def _is_ours(self, pid):
        """pid runs a command line naming this run dir.  Just after an exec
        the cmdline can read empty for a moment: read again until it is not."""
        deadline = time.monotonic() + 0.5
        while True:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
            except FileNotFoundError:
                return False
            if cmdline or not _pid_alive(pid) or time.monotonic() >= deadline:
                return (self.dir + "/").encode() in cmdline
            time.sleep(0.005)

    def alive(self, name):
        pid = self.pid(name)
        return bool(pid) and _pid_alive(pid) and self._is_ours(pid)

    def kill(self, name):
        self.tool("kill", name)

    def sigkill(self, name):
        """SIGKILL at once (no tool start-up delay), then wait until it is gone."""
        pid = self.pid(name)
        if not (pid and self.alive(name)):
            raise AssertionError("%s is not running" % name)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pid_alive(pid), 10, "%s (pid %d) gone" % (name, pid))

    def start(self, name):
        self.tool("start", name)

    def pause(self, name):
        self.tool("pause", name)

    def resume(self, name):
        self.tool("resume", name)

    def port(self):
        """A port of this cluster's block reserved for a socket the test binds."""
        if self._next_port >= PORT_BLOCK:
            raise RuntimeError("out of test ports")
        self._next_port += 1
        return self.base + self._next_port

    def _spawn_extra(self, name, argv):
        """Start argv as process NAME in DIR/NAME (log, pid file), remembered
        in self.extra so that `down` stops it whatever the test did."""
        d = os.path.join(self.dir, name)
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        logf = open(os.path.join(d, "log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        logf.close()
        p.zc_name = name
        with open(os.path.join(d, "pid"), "w") as f:
            f.write("%d\n" % p.pid)
        self.extra.append(p)
        return p

    def start_cart_node(self, name, slots, brokers, stock, extra_args=()):
        """Start a zcart-cart the cluster tool does not know, in DIR/NAME, with
        the --brokers and --stock lists given (endpoints).  `down` stops it."""
        d = os.path.join(self.dir, name)
        if self.secure:
            self.cart_key(name)  # made if missing
        argv = zcdaemon.cart_argv(BIN, name, slots, os.path.join(d, "data"), brokers, stock,
                                  self.keys if self.secure else None, self.hello_interval)
        argv += list(extra_args)
        return self._spawn_extra(name, argv)

    # -- keys --
    @property
    def keys(self):
        return self.plan.get("keys") if self.plan else None

    def key_file(self, name, secret=False):
        """KEYS/NAME.cert (or .cert_secret)."""
        return os.path.join(self.keys, name + (".cert_secret" if secret else ".cert"))

    def cart_key(self, name):
        """The secret certificate of cart node `name`, made if missing (None
        for an insecure cluster: there are no keys)."""
        if not self.secure:
            return None
        path = self.key_file("cart-" + name, secret=True)
        if not os.path.exists(path):
            r = subprocess.run([os.path.join(BIN, "zcart"), "keygen", self.keys, name],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError("zcart keygen: %s" % r.stderr)
        return path

    def sec_args(self, cert="client"):
        """The zcart CLI/bench flags for this cluster with key `cert`."""
        if not self.secure:
            return ["--insecure"]
        return ["--server-key", self.key_file("replica"), "--cert", self.key_file(cert, True)]

    def start_extra_broker(self, rid, join=True, extra_args=()):
        """Start broker replica `rid` that the cluster tool does not know, in
        DIR/broker<rid>, on three ports of this run's test range: the tool's
        brokers' --replica flags plus its own, the brokers' --broker-arg
        flags, and --join (it waits for `zcart admin add-node`).  Returns
        (name, {"id", "raft", "client", "cart"}); `down` stops it."""
        name = "broker%d" % rid
        me = {"id": rid, "raft": "127.0.0.1:%d" % self.port(),
              "client": "tcp://127.0.0.1:%d" % self.port(),
              "cart": "tcp://127.0.0.1:%d" % self.port()}
        d = os.path.join(self.dir, name)
        replicas = [{"id": int(p["argv"][p["argv"].index("--id") + 1]), "raft": p["raft"],
                     "client": p["endpoint"], "cart": p["cart_endpoint"]}
                    for p in self.plan["procs"] if p["kind"] == "broker"]
        if self.secure:  # its own raft key (raft-RID), made if missing
            r = subprocess.run([os.path.join(BIN, "zcart"), "keygen", self.keys, "--replicas",
                                str(rid)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError("zcart keygen: %s" % r.stderr)
        argv = zcdaemon.broker_argv(BIN, rid, os.path.join(d, "data"), replicas + [me],
                                    self.keys if self.secure else None)
        if join:
            argv.append("--join")
        if self.log_level:
            argv += ["--log-level", self.log_level]
        argv += self.broker_args + list(extra_args)
        self._spawn_extra(name, argv)
        return name, me

    def stop_extra(self, name, timeout=10):
        """SIGTERM a process started by start_cart_node/start_extra_broker and
        wait for it; SIGKILL if it does not stop within timeout.  Its exit
        status (negative: the signal)."""
        for p in self.extra:
            if p.zc_name == name:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                try:
                    return p.wait(timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    raise AssertionError("%s ignored SIGTERM for %.0f s" % (name, timeout))
        raise AssertionError("no extra process %s" % name)

    # -- endpoints --
    @property
    def client_endpoints(self):
        return list(self.plan["brokers"])

    @property
    def cart_endpoints(self):
        return [p["cart_endpoint"] for p in self.plan["procs"] if p["kind"] == "broker"]

    @property
    def stock_endpoints(self):
        return [p["endpoint"] for p in self.plan["procs"] if p["kind"] == "stock"]

    def raft_ports(self):
        return [self.base + 10 + i for i in range(1, self.replicas + 1)]

    def all_ports(self):
        return [port for p in self.plan["procs"] for port in p["ports"]]

    # -- the CLI --
    def cli(self, *args, session=None, timeout_ms=5000, brokers=None, cert=None):
        """Run `zcart --json ...` (against every replica, or the endpoints in
        `brokers`); (exit status, parsed JSON of the last line)."""
        argv = [os.path.join(BIN, "zcart"), "--brokers", ",".join(brokers or self.client_endpoints),
                "--json", "--timeout", str(timeout_ms)]
        argv += self.sec_args(cert or ("admin" if args and args[0] == "admin" else "client"))
        if session:
            argv += ["--session", session]
        argv += [str(a) for a in args]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout_ms / 1000.0 + 10)
        lines = r.stdout.strip().splitlines()
        try:
            obj = json.loads(lines[-1]) if lines else None
        except ValueError:
            obj = None
        if obj is None:
            raise AssertionError("zcart %s: exit %d, no JSON; stdout %r stderr %r"
                                 % (" ".join(argv[1:]), r.returncode, r.stdout, r.stderr))
        return r.returncode, obj

    def cli_popen(self, *args, session=None, timeout_ms=5000, brokers=None):
        """Start `zcart --json ...` (against every replica, or the endpoints in
        `brokers`) without waiting; finish with cli_result()."""
        argv = [os.path.join(BIN, "zcart"), "--brokers", ",".join(brokers or self.client_endpoints),
                "--json", "--timeout", str(timeout_ms)]
        argv += self.sec_args("admin" if args and args[0] == "admin" else "client")
        if session:
            argv += ["--session", session]
        argv += [str(a) for a in args]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    @staticmethod
    def cli_result(p, timeout=15):
        out, err = p.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        if not lines:
            raise AssertionError("zcart: exit %d, no output; stderr %r" % (p.returncode, err))
        return p.returncode, json.loads(lines[-1])

    def bench_popen(self, *args, brokers=None, seconds=120):
        """Start `zcart-bench --json -d SECONDS ARGS` against every replica (or
        `brokers`) without waiting; stop it with bench_stop().  SECONDS is a
        bound, not the plan: the test stops it once it has seen enough."""
        argv = [os.path.join(BIN, "zcart-bench"), "--brokers",
                ",".join(brokers or self.client_endpoints), "--json", "-d", str(seconds)]
        argv += self.sec_args()
        argv += [str(a) for a in args]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.clients.append(p)
        return p

    @staticmethod
    def bench_stop(p, timeout=30):
        """SIGTERM a bench_popen() (it finishes its requests in flight, each
        within its --timeout, and reports); its JSON report."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        if p.returncode != 0 or not lines:
            raise AssertionError("zcart-bench: exit %d, stdout %r, stderr %r"
                                 % (p.returncode, out, err))
        return json.loads(lines[-1])

    def status(self):
        """`zcart status --json` (every replica's properties)."""
        _, st = self.cli("status", timeout_ms=2000)
        return st

    def replica_status(self, endpoint, timeout=1.0):
        """One replica's STATUS props as a dict (ints where decimal), via zcproto."""
        with Dealer(endpoint, cluster=self) as d:
            corr = random.getrandbits(63)
            d.send(zp.status(corr))
            m = d.recv(timeout)
            if m.id != zp.STATUS_REPLY or m.corr != corr:
                raise AssertionError("STATUS answered with %r" % (m,))
        out = {}
        for k, v in m.props:
            out[k] = int(v) if v.isdigit() else v
        return out

    def all_status(self):
        return [self.replica_status(ep) for ep in self.client_endpoints]

    def leader(self):
        """The STATUS of the ready leader, or None."""
        for s in self.all_status_lenient():
            if s.get("role") == "leader" and s.get("ready", 1) == 1:
                return s
        return None

    def all_status_lenient(self):
        out = []
        for ep in self.client_endpoints:
            try:
                out.append(self.replica_status(ep, timeout=0.5))
            except (AssertionError, Timeout, zmq.ZMQError):
                pass
        return out

    def leader_endpoint(self, timeout=15):
        return wait_until(lambda: (self.leader() or {}).get("endpoint"), timeout,
                          "a ready leader")

    def counts(self):
        """(total, free, assigned, draining) as the leader sees them."""
        s = self.leader()
        if s is None:
            return None
        return (s["carts_total"], s["carts_free"], s["carts_assigned"], s["carts_draining"])

    # -- logs --
    def log_paths(self):
        if not self.dir or not os.path.isdir(self.dir):
            return []
        return sorted(os.path.join(self.dir, n, "log") for n in os.listdir(self.dir)
                      if os.path.exists(os.path.join(self.dir, n, "log")))

    def dump_logs(self, lines=150, out=sys.stderr):
        for path in self.log_paths():
            with open(path, "rb") as f:
                tail = f.read().decode(errors="replace").splitlines()[-lines:]
            print("\n----- %s (last %d lines) -----" % (path, len(tail)), file=out)
            print("\n".join(tail), file=out)
        out.flush()

    def grep_logs(self, needle):
        """Lines containing needle in every log, as (log path, line)."""
        hits = []
        for path in self.log_paths():
            with open(path, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if needle in line:
                        hits.append((path, line))
        return hits


# --- cluster views ---------------------------------------------------------------------------

def converged(c, endpoints=None):
    """The STATUS of every replica (c's client endpoints, or those given) once
    all of them answer, exactly one is a ready leader, and every one is at
    the leader's applied index with the leader's digest (zcdaemon); else
    None."""
    endpoints = list(endpoints or c.client_endpoints)
    st = []
    for ep in endpoints:
        try:
            st.append(c.replica_status(ep, timeout=0.5))
        except (AssertionError, Timeout, zmq.ZMQError):
            return None
    return None if zcdaemon.disagreement(st, len(endpoints)) else st


def describe(c, endpoints=None):
    """(id, role, commit, applied, digest, carts) of every replica that answers."""
    out = []
    for ep in endpoints or c.client_endpoints:
        try:
            s = c.replica_status(ep, timeout=0.5)
        except (AssertionError, Timeout, zmq.ZMQError) as e:
            out.append((ep, "no answer: %s" % e))
            continue
        out.append((s["id"], s["role"], s["commit_index"], s["applied_index"], s["digest"],
                    s["carts_total"]))
    return out


def _teardown_all():
    for c in list(_live_clusters):
        try:
            c.down()
        except Exception as e:  # noqa: BLE001
            print("harness: teardown of %s failed: %s" % (c.dir, e), file=sys.stderr)


atexit.register(_teardown_all)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


# --- raw sockets ---------------------------------------------------------------------------

read_cert = zcdaemon.read_cert  # (public, secret) z85 bytes of a czmq certificate


def cluster_for(endpoint):
    """The newest live secure cluster that owns `endpoint`, or None."""
    for c in reversed(_live_clusters):
        if c.secure and c.plan and (endpoint in c.client_endpoints or endpoint in c.cart_endpoints
                                    or endpoint in c.stock_endpoints):
            return c
    return None


def curve_client(sock, endpoint, routing_id=None, cert=None, cluster=None):
    """Make `sock` a CURVE client fitting `endpoint` of a secure cluster (see
    the module doc); a no-op for an insecure one.  cert: a key name in KEYS
    (e.g. "admin", "cart-cart1") or a path."""
    c = cluster or cluster_for(endpoint)
    if c is None or not c.secure:
        return
    if cert is None:
        if endpoint in c.cart_endpoints:
            rid = routing_id.decode(errors="replace") if routing_id else ""
            cand = c.key_file("cart-" + rid, True)
            cert = cand if rid and os.path.exists(cand) else c.cart_key("cart1")
        elif endpoint in c.stock_endpoints:
            cert = c.cart_key("cart1")
        else:
            cert = "client"
    path = cert if os.path.sep in cert else c.key_file(cert, True)
    pub, sec = read_cert(path)
    server = "stock" if endpoint in c.stock_endpoints else "replica"
    sock.curve_serverkey = read_cert(c.key_file(server))[0]
    sock.curve_publickey = pub
    sock.curve_secretkey = sec


def handshake(endpoint, cluster, cert, routing_id=None, plain=False):
    """Connect a DEALER (plain, or CURVE with KEYS/cert) and wait up to 10 s
    for the handshake's outcome: "ok", "refused" (failed or disconnected).
    Returns (outcome, socket); the caller closes the socket."""
    sock = zctx().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if routing_id:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if not plain:
        curve_client(sock, endpoint, routing_id, cert, cluster)
    mon = sock.get_monitor_socket()
    sock.connect(endpoint)
    deadline = time.monotonic() + 10
    outcome = None
    try:
        while outcome is None and time.monotonic() < deadline:
            if not mon.poll(100):
                continue
            ev = zmq.utils.monitor.recv_monitor_message(mon)["event"]
            if ev == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                outcome = "ok"
            elif ev in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_DISCONNECTED):
                outcome = "refused"
    finally:
        sock.disable_monitor()
        mon.close(0)
    if outcome is None:
        sock.close(0)
        raise Timeout("no handshake outcome from %s within 10 s" % endpoint)
    return outcome, sock


class Dealer:
    """A raw DEALER to one endpoint speaking zcproto (or raw bytes); CURVE
    with a fitting key when the endpoint is a secure cluster's (cert= picks
    the key: a name in KEYS or a path; cert=False: plain)."""

    def __init__(self, endpoint, routing_id=None, cert=None, cluster=None):
        self.endpoint = endpoint
        self.sock = zctx().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if routing_id:
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        if cert is not False:
            curve_client(self.sock, endpoint, routing_id, cert, cluster)
        self.sock.connect(endpoint)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close(0)

    def send(self, msg, strict=True):
        """Send a Msg (encoded), bytes (one frame) or a list of frames."""
        if isinstance(msg, zp.Msg):
            self.sock.send(zp.encode(msg, strict=strict))
        elif isinstance(msg, (list, tuple)):
            self.sock.send_multipart(list(msg))
        else:
            self.sock.send(msg)

    def recv_raw(self, timeout):
        if not self.sock.poll(int(timeout * 1000)):
            raise Timeout("no message from %s within %.1f s" % (self.endpoint, timeout))
        return self.sock.recv_multipart()

    def recv(self, timeout=5.0):
        frames = self.recv_raw(timeout)
        if len(frames) != 1:
            raise AssertionError("expected one frame, got %d: %r" % (len(frames), frames))
        return zp.decode(frames[0])

    def pending(self, timeout=0.0):
        return bool(self.sock.poll(int(timeout * 1000)))

    def request(self, session, seq, op, product="", qty=0, timeout=5.0):
        """Send one REQUEST and wait for the REPLY of that (session, seq)."""
        self.send(zp.request(session, seq, op, product, qty))
        return self.reply_for(session, seq, timeout)

    def reply_for(self, session, seq, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            m = self.recv(max(left, 0.0))
            if m.id == zp.REPLY and m.session == session and m.seq == seq:
                return m


class FakeRouter:
    """A ROUTER the test binds: a fake broker replica or a fake stock service.
    With a secure cluster, `as_key` ("replica" or "stock") makes it a CURVE
    server with that key, so the cluster's cart nodes can connect (pyzmq has
    no ZAP handler here: it admits any client key, which is what a fake may)."""

    def __init__(self, endpoint, cluster=None, as_key=None):
        self.endpoint = endpoint
        self.sock = zctx().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if cluster is not None and cluster.secure and as_key:
            self.sock.curve_server = True
            self.sock.curve_secretkey = read_cert(cluster.key_file(as_key, True))[1]
        self.sock.bind(endpoint)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close(0)

    def recv(self, timeout=5.0):
        """(routing id, frames after it)."""
        if not self.sock.poll(int(timeout * 1000)):
            raise Timeout("nothing on %s within %.1f s" % (self.endpoint, timeout))
        frames = self.sock.recv_multipart()
        return frames[0], frames[1:]

    def recv_msg(self, want_id=None, timeout=5.0):
        """(routing id, Msg): the next well-formed message (of want_id if given)."""
        deadline = time.monotonic() + timeout
        while True:
            rid, frames = self.recv(max(deadline - time.monotonic(), 0.0))
            m = zp.decode_one(frames)
            if m is not None and (want_id is None or m.id == want_id):
                return rid, m

    def send(self, rid, msg, strict=True):
        if isinstance(msg, zp.Msg):
            self.sock.send_multipart([rid, zp.encode(msg, strict=strict)])
        elif isinstance(msg, (list, tuple)):
            self.sock.send_multipart([rid] + list(msg))
        else:
            self.sock.send_multipart([rid, msg])


def tcp_junk(port, payload, timeout=2.0):
    """Connect to 127.0.0.1:port, send payload, read whatever comes for a moment, close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        s.settimeout(0.05)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass  # the peer hung up on the junk: fine
    finally:
        s.close()


# --- sessions through the CLI ------------------------------------------------------------------

class CliSession:
    """One client session driven through the `zcart` CLI (--json)."""

    def __init__(self, cluster, session=None):
        self.cluster = cluster
        self.id = session

    def run(self, *args, expect_ok=True, timeout_ms=5000):
        rc, r = self.cluster.cli(*args, session=self.id, timeout_ms=timeout_ms)
        if self.id is None and r.get("session"):
            self.id = r["session"]
        if expect_ok is True and (rc != 0 or not r.get("ok")):
            raise AssertionError("zcart %s (session %s): exit %d, %r"
                                 % (" ".join(map(str, args)), self.id, rc, r))
        return r

    def add(self, product, qty, **kw):
        return self.run("add", product, qty, **kw)

    def remove(self, product, qty, **kw):
        return self.run("remove", product, qty, **kw)

    def list(self, **kw):
        return self.run("list", **kw)

    def close(self, **kw):
        return self.run("close", **kw)


class CliShell:
    """One `zcart --json shell` process: one session for its whole life (the
    first add starts it), commands written to its stdin, one JSON result per
    line read back.  Its stderr goes to DIR/<name>/log, so a failing test
    shows it with the daemons' logs.  The cluster kills it at teardown."""

    def __init__(self, cluster, name, brokers=None, timeout_ms=None):
        self.cluster = cluster
        self.name = name
        d = os.path.join(cluster.dir, name)
        os.makedirs(d, exist_ok=True)
        argv = [os.path.join(BIN, "zcart"), "--brokers",
                ",".join(brokers or cluster.client_endpoints), "--json"] + cluster.sec_args()
        if timeout_ms is not None:
            argv += ["--timeout", str(timeout_ms)]
        argv.append("shell")
        with open(os.path.join(d, "log"), "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)
        cluster.clients.append(self.proc)
        self._buf = b""

    def cmd(self, line, timeout=15.0):
        """Send one command line; its result as a dict.  The CLI answers every
        command within its own --timeout; `timeout` only catches a hung shell."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Timeout("%s: no result for %r within %.0f s" % (self.name, line, timeout))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("%s exited (status %r) before answering %r"
                                     % (self.name, self.proc.poll(), line))
            self._buf += chunk
        out, self._buf = self._buf.split(b"\n", 1)
        return json.loads(out)

    def quit(self, timeout=10.0):
        """Close its stdin; its exit status."""
        self.proc.stdin.close()
        return self.proc.wait(timeout)


def items_of(reply):
    """{product: qty} of a CLI JSON reply or a zcproto REPLY."""
    if isinstance(reply, zp.Msg):
        return dict(reply.items)
    return {i["product"]: i["qty"] for i in reply.get("items", [])}


def write_catalog(cluster_dir_hint, lines):
    """Write a catalog file (product -> qty) in a fresh temp path; its path."""
    os.makedirs(ROOT, exist_ok=True)
    path = os.path.join(ROOT, "catalog-%d-%d.csv" % (os.getpid(), random.getrandbits(32)))
    with open(path, "w") as f:
        f.write("# written by tests/integration (%s)\n" % cluster_dir_hint)
        for product, qty in lines.items():
            f.write("%s,%d\n" % (product, qty))
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


# --- unittest glue --------------------------------------------------------------------------

def build_shim(src):
    """Compile an LD_PRELOAD test shim (a C file) into a fresh temp dir; its path."""
    d = tempfile.mkdtemp(prefix="zc-shim-")
    so = os.path.join(d, os.path.splitext(os.path.basename(src))[0] + ".so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", so, src,
                    "-ldl"], check=True)
    return so


def preload(test, so, **env):
    """Every process the test starts from now on (daemons included) gets
    LD_PRELOAD=so and env; undone when the test ends.  Under
    AddressSanitizer the shim comes before its runtime in the library list:
    allowed (verify_asan_link_order=0), a shim calls nothing ASan
    intercepts first."""
    saved = {k: os.environ.get(k) for k in ["LD_PRELOAD", "ASAN_OPTIONS"] + list(env)}
    os.environ["LD_PRELOAD"] = so
    asan = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    os.environ.update(env)

    def restore():
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    test.addCleanup(restore)


class ClusterTestCase(unittest.TestCase):
    """A TestCase whose clusters are torn down after each test, and whose
    logs are dumped when it fails."""

    def setUp(self):
        self.clusters = []

    def cluster(self, **kw):
        kw.setdefault("label", self.id().split(".")[-1])
        c = Cluster(**kw)
        self.clusters.append(c)
        self.addCleanup(c.down)
        c.up()
        return c

    def assertConverges(self, c, endpoints=None, timeout=20):
        """Wait until every replica (c's, or those at `endpoints`) is at the
        leader's applied index with its digest; fail with every replica's
        (id, role, commit, applied, digest, carts) otherwise.  Also: no
        replica skipped an entry it could not decode, and all count the same
        carts.  The replicas' STATUS."""
        try:
            st = wait_until(lambda: converged(c, endpoints), timeout,
                            "all replicas at one applied index and digest")
        except Timeout:
            self.fail("replicas did not converge: (id, role, commit, applied, digest, carts) %r"
                      % describe(c, endpoints))
        self.assertEqual(c.grep_logs("undecodable command"), [],
                         "replicas skipped entries they could not decode")
        counts = {(s["carts_total"], s["carts_free"], s["carts_assigned"]) for s in st}
        self.assertEqual(len(counts), 1, counts)
        return st

    def assertAllAlive(self, c):
        dead = [n for n in c.names() if not c.alive(n)]
        self.assertEqual(dead, [], "processes died: %s" % dead)


class _DumpingResult(unittest.TextTestResult):
    def startTest(self, test):
        self._failed_before = len(self.failures) + len(self.errors)
        super().startTest(test)

    def stopTest(self, test):
        failed = len(self.failures) + len(self.errors) > self._failed_before
        for c in getattr(test, "clusters", []):
            if failed:
                print("\n===== logs of cluster %s (kept) =====" % c.dir, file=sys.stderr)
                c.dump_logs()
            elif c.dir and not os.environ.get("ZCART_IT_KEEP"):
                shutil.rmtree(c.dir, ignore_errors=True)
        super().stopTest(test)


def main():
    """Run the calling test module's tests; exit status 0 iff all pass."""
    runner = unittest.TextTestRunner(resultclass=_DumpingResult, verbosity=2, stream=sys.stderr)
    unittest.main(module="__main__", testRunner=runner, exit=True)
