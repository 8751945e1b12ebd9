// dashboard_check.js: drive the gateway's dashboard in headless Chromium
// (Debian's, through playwright-core) across a leader failover.  Used by
// test_dashboard.py:
//   node dashboard_check.js URL SHOT_DIR CLUSTER_TOOL RUN_DIR   (runs TOOL kill brokerN --dir DIR)
// Prints one JSON line: the leader before and after, the page's update
// counter at both times, what the page showed of the leader's request
// counters while this script sent adds through the gateway, and whether the
// counter froze once the page's timers were stopped (the control that makes
// "it updates" meaningful).
"use strict";
const { execFileSync } = require("child_process");
const path = require("path");
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

const [url, shotDir, tool, runDir] = process.argv.slice(2);

async function leaderId(page) {
  const t = await page.textContent("#leader");
  const m = /replica (\d+)/.exec(t || "");
  return m ? Number(m[1]) : null;
}

async function updates(page) { return Number(await page.textContent("#updates")); }

// Adds through the gateway, one session each, until stop() (the leader's
// request counters on the page must then move).
function traffic(base, token) {
  let running = true, ok = 0, failed = 0;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const session = (Date.now().toString(16) + i.toString(16)).padStart(32, "0").slice(-32);
      try {
        const r = await fetch(base + "/v1/sessions/" + session + "/items", {
          method: "POST",
          headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
          body: JSON.stringify({ product: "apple", qty: 1 }),
        });
        if (r.ok) ok++; else failed++;
        await r.arrayBuffer();
        if (r.ok) {
          const c = await fetch(base + "/v1/sessions/" + session,
                                { method: "DELETE", headers: { Authorization: "Bearer " + token } });
          await c.arrayBuffer();
        }
      } catch (e) {
        failed++;
        await new Promise(r => setTimeout(r, 50));
      }
    }
  })();
  return { stop: async () => { running = false; await loop; return { ok, failed }; } };
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise(r => setTimeout(r, 100));
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const out = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(url);
    out.before = await waitFor("a leader on the page", () => leaderId(page), 20000);
    out.updates_before = await updates(page);
    // The leader's request counters, while adds flow through the gateway.
    const base = new URL(url).origin, token = decodeURIComponent((/token=([^&]+)/.exec(url) || [])[1] || "");
    const t = traffic(base, token);
    try {
      // The page fetches /v1/cluster and /v1/gateway side by side, so one
      // refresh can show the leader's counters moved while the gateway's
      // answer predates the first add: wait until both show the traffic.
      await waitFor("the leader's and the gateway's answers on the page", async () => {
        const rate = Number(await page.textContent("#cluster-rate"));
        const served = Number(await page.textContent("#cluster-recent"));
        const addLat = await page.textContent("#add-lat");
        return rate > 0 && served > 0 && /\//.test(addLat || "");
      }, 20000);
      out.leader_rate = Number(await page.textContent("#cluster-rate"));
      out.leader_served = Number(await page.textContent("#cluster-recent"));
      out.leader_latency = await page.textContent("#cluster-lat");
      out.gateway_latency = await page.textContent("#add-lat");
    } finally {
      out.traffic = await t.stop();
    }
    await page.screenshot({ path: path.join(shotDir, "dashboard-before.png"), fullPage: true });
    execFileSync(tool, ["kill", "broker" + out.before, "--dir", runDir], { stdio: "ignore" });
    out.after = await waitFor("a new leader on the page",
                              async () => { const l = await leaderId(page); return l && l !== out.before ? l : null; },
                              30000);
    out.updates_after = await updates(page);
    await page.screenshot({ path: path.join(shotDir, "dashboard-after-failover.png"), fullPage: true });
    // Control: with the page's timers stopped, the counter must stand still.
    await page.evaluate(() => { for (let i = 1; i < 10000; i++) clearInterval(i); });
    await new Promise(r => setTimeout(r, 1500));
    const frozen = await updates(page);
    await new Promise(r => setTimeout(r, 2500));
    out.frozen_holds = (await updates(page)) === frozen;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
