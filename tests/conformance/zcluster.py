"""Start and steer a real zcart cluster for the conformance suite.

Only deploy/local/zcart-cluster (its --help) is used: `up` with a private run
directory under /tmp and a port block found by bind-probing, `kill / start /
pause / resume` for faults, `down` at the end.  Port blocks are taken from
11000-19999 (away from 20000-40000, which other suites use), under a lock
file so two conformance files running at once (ctest -j2) cannot race.
The plan the tool writes (DIR/cluster.json) names the endpoints.

Security: clusters run secure (CurveZMQ, keys per role, docs/security.md)
unless ZCART_CONF_INSECURE=1.  The suite's sockets then use the cluster's
certificates from DIR/keys, read as the plain text czmq writes them:
`curve(sock, key, server)` makes a socket a CURVE client with one of them.
The client uses the admin key (admin commands need it; requests take it
too), a cart node its own cart key (made with `zcart keygen` on demand).
"""

import fcntl
import json
import os
import random
import sys
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "deploy", "local"))
import zcdaemon  # noqa: E402  (the keys layout of `zcart keygen`)
TOOL = os.path.join(REPO, "deploy", "local", "zcart-cluster")
CATALOG = os.path.join(HERE, "catalog.csv")
LOCK = "/tmp/zcart-conformance-ports.lock"
SECURE = os.environ.get("ZCART_CONF_INSECURE") != "1"
_keys = None   # DIR/keys of the newest cluster started (secure), else None


read_cert = zcdaemon.read_cert  # (public, secret) z85 bytes of a czmq certificate


def cart_key(name):
    """The key name ("cart-NAME") of cart node NAME, made if missing; a name
    keygen refuses (outside [A-Za-z0-9_-]) gets the cart key of another node
    ("misnamed"): the cart port admits it (a cart key) and drops its frames,
    since its name is not the node's -- as it drops the bad name itself.
    (A key of another role would not get past the handshake.)"""
    if _keys and not os.path.exists(os.path.join(_keys, "cart-%s.cert_secret" % name)):
        r = subprocess.run([os.path.join(bin_dir(), "zcart"), "keygen", _keys, name],
                           capture_output=True)
        if r.returncode != 0:
            return cart_key("misnamed")
    return "cart-" + name


def curve(sock, key, server="replica"):
    """Make sock (not yet connected) a CURVE client with KEYS/<key>.cert_secret
    of the newest secure cluster, to its `server` key ("replica" or "stock");
    nothing for an insecure one."""
    if _keys is None:
        return
    pub, sec = read_cert(os.path.join(_keys, key + ".cert_secret"))
    sock.curve_serverkey = read_cert(os.path.join(_keys, server + ".cert"))[0]
    sock.curve_publickey = pub
    sock.curve_secretkey = sec


def bin_dir():
    return os.environ.get("ZCART_BIN") or os.path.join(REPO, "build", "bin")


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(cond, timeout, what="condition", interval=0.05, describe=None):
    """Poll cond() until it returns a true value; fail after timeout seconds
    (the message adds describe() when given: the state that was seen)."""
    end = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() >= end:
            seen = ""
            if describe:
                try:
                    seen = "; last seen: %s" % (describe(),)
                except Exception as e:  # the description must not hide the timeout
                    seen = "; (describe failed: %r)" % (e,)
            raise AssertionError("timed out after %.1f s waiting for %s%s" % (timeout, what, seen))
        time.sleep(interval)


class Cluster:
    def __init__(self, replicas=3, cart_nodes=1, slots=4, broker_args=(), cart_args=(),
                 stock_args=(), hello_interval=None, stock=1):
        self.replicas, self.cart_nodes, self.slots = replicas, cart_nodes, slots
        self.broker_args, self.cart_args, self.stock_args = broker_args, cart_args, stock_args
        self.hello_interval = hello_interval
        self.stock_n = stock
        self.dir = None
        self.plan = None

    def _tool(self, *args, check=True, timeout=60):
        r = subprocess.run([TOOL] + list(args) + ["--dir", self.dir], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("zcart-cluster %s failed (%d): %s %s"
                               % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def up(self):
        self.dir = tempfile.mkdtemp(prefix="zcart-conformance-", dir="/tmp")
        with open(LOCK, "a+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            base = self._pick_base()
            args = ["up", "--fresh", "--replicas", str(self.replicas), "--cart-nodes",
                    str(self.cart_nodes), "--slots", str(self.slots), "--stock", str(self.stock_n),
                    "--base-port", str(base), "--bin", bin_dir(), "--catalog", CATALOG,
                    "--log-level", os.environ.get("ZCART_CONF_LOG_LEVEL", "warn")]
            if self.hello_interval:
                args += ["--hello-interval", str(self.hello_interval)]
            args += ["--broker-arg=" + a for a in self.broker_args]
            args += ["--cart-arg=" + a for a in self.cart_args]
            args += ["--stock-arg=" + a for a in self.stock_args]
            if not SECURE:
                args.append("--insecure")
            self._tool(*args)
        with open(os.path.join(self.dir, "cluster.json")) as f:
            self.plan = json.load(f)
        global _keys
        _keys = self.plan.get("keys") if SECURE else None
        return self

    def _pick_base(self):
        rnd = random.Random()
        for _ in range(200):
            base = rnd.randrange(11000, 19900, 50)
            if all(port_free(p) for p in range(base + 10, base + 50)):
                return base
        raise RuntimeError("no free port block in 11000-19999")

    def down(self, keep=False):
        if self.dir:
            self._tool("down", "--stop-timeout", "5", check=False)
            if not keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ plan
    def procs(self, kind):
        return [p for p in self.plan["procs"] if p["kind"] == kind]

    @property
    def client_eps(self):
        return [p["endpoint"] for p in self.procs("broker")]

    @property
    def cart_eps(self):
        return [p["cart_endpoint"] for p in self.procs("broker")]

    @property
    def stock_eps(self):
        return [p["endpoint"] for p in self.procs("stock")]

    def broker_name(self, client_ep):
        return [p["name"] for p in self.procs("broker") if p["endpoint"] == client_ep][0]

    def cart_proc_of_node(self, node):
        """zcart-cluster's process name of the cart node called `node`."""
        for p in self.procs("cart"):
            argv = p["argv"]
            if argv[argv.index("--name") + 1] == node:
                return p["name"]
        raise KeyError(node)

    # ------------------------------------------------------------ faults
    def kill(self, name):
        self._tool("kill", name)

    def start(self, name):
        self._tool("start", name, "--wait", "0", check=False)

    def pid(self, name):
        """The pid of one process, from `zcart-cluster status --json`."""
        st = json.loads(self._tool("status", "--json", check=False).stdout)
        return [p["pid"] for p in st["processes"] if p["name"] == name][0]

    def pause(self, name):
        self._tool("pause", name)

    def resume(self, name):
        self._tool("resume", name)
