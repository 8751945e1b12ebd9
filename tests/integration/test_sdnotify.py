#!/usr/bin/python3
"""test_sdnotify: the daemons speak systemd's notify protocol (issue 15).

Design
------
A daemon started with NOTIFY_SOCKET (as systemd starts a Type=notify unit)
sends READY=1 with a STATUS= line once it serves, WATCHDOG=1 at half of
WATCHDOG_USEC from its event loop, and STOPPING=1 on SIGTERM.  The test
plays systemd: a unix datagram socket, the daemon's environment, and the
messages read back with deadlines.  (deploy/systemd's units are checked by
scripts/check-package.sh: `systemd-analyze verify` after `dpkg -i`.)

n1. zcart-stock: READY=1 and "STATUS=serving 2 products on ..."; with
    WATCHDOG_USEC=200000 at least 5 WATCHDOG=1 within 2 s; none while it is
    paused (SIGSTOP: a stopped loop is what the watchdog is for); STOPPING=1
    after SIGTERM, then exit 0.
n2. zcart-broker (1 replica): READY=1 once it serves clients, then a STATUS
    saying it is the ready leader.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness

BIN = harness.BIN


class Notify:
    """systemd's end: a datagram socket collecting sd_notify messages."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            hit = [m for m in self.msgs if pred(m)]
            if hit:
                return hit[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %.1f s; got %r" % (what, timeout, self.msgs))
            self.sock.settimeout(left)
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def drain(self, seconds):
        """Collect for `seconds`; the messages that came."""
        got, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                break
        self.msgs += got
        return got

    def close(self):
        self.sock.close()


class SdNotify(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="zcart-sdnotify-")
        self.n = Notify(self.tmp.name)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        self.n.close()
        self.tmp.cleanup()

    def start(self, argv, **env):
        e = dict(os.environ, NOTIFY_SOCKET=self.n.path, **env)
        p = subprocess.Popen(argv, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def test_n1_stock_ready_watchdog_stopping(self):
        cat = os.path.join(self.tmp.name, "cat.csv")
        with open(cat, "w") as f:
            f.write("apple,3\npear,4\n")
        ep = "tcp://127.0.0.1:%d" % self.port()
        p = self.start([os.path.join(BIN, "zcart-stock"), "--bind", ep, "--insecure",
                        "--data", os.path.join(self.tmp.name, "stock"), "--catalog", cat],
                       WATCHDOG_USEC="200000")
        ready = self.n.wait_for(lambda m: "READY=1" in m, 10, "READY=1")
        self.assertIn("STATUS=serving 2 products on %s" % ep, ready)
        t0 = time.monotonic()
        self.n.wait_for(lambda m: self.n.msgs.count("WATCHDOG=1") >= 5, 2.0, "5 watchdog pings")
        print("5 pings in %.2f s" % (time.monotonic() - t0))
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.15)      # a ping in flight when it stopped may still land
        self.n.drain(0.05)
        self.assertEqual(self.n.drain(0.5), [], "pings from a stopped process")
        p.send_signal(signal.SIGCONT)
        self.n.wait_for(lambda m: m == "WATCHDOG=1", 2.0, "pings again after SIGCONT")
        p.send_signal(signal.SIGTERM)
        self.n.wait_for(lambda m: "STOPPING=1" in m, 5, "STOPPING=1")
        self.assertEqual(p.wait(timeout=10), 0)

    def test_n2_broker_ready_then_leader_status(self):
        raft, client, cart = self.port(), self.port(), self.port()
        self.start([os.path.join(BIN, "zcart-broker"), "--id", "1", "--insecure",
                    "--data", os.path.join(self.tmp.name, "b1"), "--replica",
                    "1=127.0.0.1:%d,tcp://127.0.0.1:%d,tcp://127.0.0.1:%d" % (raft, client, cart)])
        ready = self.n.wait_for(lambda m: "READY=1" in m, 10, "READY=1")
        self.assertIn("STATUS=replica 1: serving clients on tcp://127.0.0.1:%d" % client, ready)
        self.n.wait_for(lambda m: m.startswith("STATUS=replica 1: leader (ready), term "), 10,
                        "a ready-leader STATUS")


if __name__ == "__main__":
    harness.main()
