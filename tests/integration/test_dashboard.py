#!/usr/bin/python3
"""test_dashboard: the gateway's dashboard page, rendered by a real browser,
shows a new leader after the leader is killed.

Design
------
d1. A secure 3-replica cluster with one gateway.  dashboard_check.js opens
    http://GATEWAY/#token=TOKEN in headless Chromium (Debian's chromium,
    driven by playwright-core from .tools/node), waits until the page names
    a leader, sends adds through the gateway until the page shows the
    leader's answers per second and its last 5-10 s of latency (STATUS
    props), kills that replica (`zcart-cluster kill brokerN`), and waits
    -- without reloading -- until the page names another one.  Checked: the
    leader changed on the page, the page's update counter grew meanwhile,
    and, as a control, the counter stands still once the page's timers are
    stopped (so a page that stops updating fails this test).  Screenshots
    before and after the failover are kept as artifacts in
    BUILD/artifacts/.
"""

import json
import os
import subprocess

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(harness.REPO, ".tools", "node", "node_modules")


class Dashboard(harness.ClusterTestCase):
    def test_d1_new_leader_shows_on_the_page(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2, gateways=1)
        self.assertConverges(c)
        with open(c.plan["gateway_token"]) as f:
            token = f.read().strip()
        shots = os.path.join(os.path.dirname(harness.BIN), "artifacts")
        os.makedirs(shots, exist_ok=True)
        env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(TOOLS, "playwright-core"))
        r = subprocess.run(["node", os.path.join(HERE, "dashboard_check.js"),
                            "%s/#token=%s" % (c.plan["gateways"][0], token), shots,
                            harness.CLUSTER_TOOL, c.dir],
                           capture_output=True, text=True, timeout=120, env=env)
        lines = r.stdout.strip().splitlines()
        self.assertTrue(lines, "dashboard_check.js printed nothing: %s" % r.stderr[-2000:])
        out = json.loads(lines[-1])
        print("dashboard:", out)
        self.assertNotIn("error", out, r.stderr[-2000:])
        self.assertEqual(r.returncode, 0)
        self.assertIsNotNone(out["before"])
        self.assertNotEqual(out["after"], out["before"])
        self.assertGreater(out["updates_after"], out["updates_before"])
        self.assertGreater(out["traffic"]["ok"], 0)
        self.assertGreater(out["leader_rate"], 0)
        self.assertGreater(out["leader_served"], 0)
        self.assertRegex(out["leader_latency"], r"^(\u2264 [0-9.]+ (ms|\u00b5s)|> 10 s) / ")
        self.assertRegex(out["gateway_latency"], r"^(\u2264 [0-9.]+ (ms|\u00b5s)|> 10 s) / ")
        self.assertTrue(out["frozen_holds"], "the update counter moved with the timers stopped")
        for name in ("dashboard-before.png", "dashboard-after-failover.png"):
            self.assertGreater(os.path.getsize(os.path.join(shots, name)), 1000)


if __name__ == "__main__":
    harness.main()
