#!/usr/bin/python3
"""test_gateway: the REST gateway (zcart-gateway) against a real cluster, and
every answer against its contract, docs/openapi.yaml.

Design
------
A secure 3-replica cluster with 2 cart nodes x 2 slots (4 carts) and one
gateway (`zcart-cluster up --gateways 1`, bearer token from
DIR/gateway.token).  One HTTP/1.1 keep-alive connection, like a web shop's.
Every answer is checked twice: its HTTP status is one the contract lists
for that operation, and its JSON validates against the contract's schema
(python3-jsonschema, JSON Schema 2020-12 as OpenAPI 3.1 uses it):
CartAnswer for 200s of cart operations, Problem (application/problem+json)
for every error, ClusterStatus and GatewayCounters for the two others.

g1. Each resource and each error the gateway can give: add, list, remove,
    close (200); no token (401); UNKNOWN_PRODUCT and NOT_IN_CART (404);
    OUT_OF_STOCK (409); bad input naming the field (400: qty, product, the
    body, the session); an unknown path (404) and method (405); a body over
    the limit (413); NO_FREE_CART once all 4 carts are taken (503 with
    Retry-After); SESSION_CLOSED after a close (410); the cluster's status
    (the leader's request counters count the calls made), the gateway's own
    counters, and its /metrics (401 without the token, `promtool check
    metrics`, the same counts).
g2. Exactly once over HTTP: a POST retried with the same Idempotency-Key
    answers with the same seq and adds once (the list shows it); the same
    key on a different request is 422; an explicit Zcart-Seq retried adds
    once too.
g3. Failures in the cluster: the cart node of a session paused (SIGSTOP):
    CART_UNAVAILABLE 503 with Retry-After (the brokers run with
    --cart-timeout 500); every replica paused: 504
    UNREACHABLE with in_doubt (the gateway runs with --timeout 1500); with
    every replica still paused, a second gateway with one worker and
    --max-inflight 1 answers a second request 503 GATEWAY_BUSY at once while
    the first waits.
g4. The curl flow of docs/gateway.md, run by bash as the page shows it
    (ZCART_GATEWAY, ZCART_GATEWAY_TOKEN from the cluster, curl told to print
    each status): add with an Idempotency-Key, list, remove one, close,
    cluster status -- all 200, and the items as the steps leave them.
"""

import http.client
import json
import os
import re
import subprocess
import threading
import time

import jsonschema
import yaml

import harness
from harness import wait_until

SPEC_PATH = os.path.join(harness.REPO, "docs", "openapi.yaml")
with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)
RESOLVER = jsonschema.RefResolver.from_schema(SPEC)


def schema_check(name, doc):
    """Validate doc against components/schemas/NAME of the contract."""
    v = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/" + name},
                                        resolver=RESOLVER)
    v.validate(doc)


def documented(path_template, method, status):
    op = SPEC["paths"][path_template][method.lower()]
    return str(status) in op["responses"]


class Http:
    """One keep-alive HTTP/1.1 connection to a gateway."""

    def __init__(self, url, token):
        host, port = url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.token = token

    def call(self, method, path, body=None, headers=None, token=True, raw=None):
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        text = r.read()
        ctype = r.getheader("Content-Type", "")
        doc = json.loads(text) if "json" in ctype else text.decode()
        return r.status, r.headers, doc

    def close(self):
        self.conn.close()


S_ITEMS = "/v1/sessions/{session}/items"
S_ITEM = "/v1/sessions/{session}/items/{product}"
S_CART = "/v1/sessions/{session}/cart"
S_SESSION = "/v1/sessions/{session}"


class Gateway(harness.ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.catalog = os.path.join(harness.ROOT, "gateway-catalog-%d.csv" % os.getpid())
        with open(self.catalog, "w") as f:
            f.write("apple,1000\npear,3\nplum,1000\n")
        self.addCleanup(os.unlink, self.catalog)

    def start(self, **kw):
        c = self.cluster(replicas=3, cart_nodes=2, slots=2, catalog=self.catalog, gateways=1, **kw)
        self.assertConverges(c)
        with open(c.plan["gateway_token"]) as f:
            token = f.read().strip()
        h = Http(c.plan["gateways"][0], token)
        self.addCleanup(h.close)
        return c, h

    def expect(self, h, template, method, path, status, body=None, reason=None, **kw):
        """One call: status as given and documented, JSON per the contract."""
        got, headers, doc = h.call(method, path, body, **kw)
        self.assertEqual(got, status, (method, path, doc))
        if template:
            self.assertTrue(documented(template, method, status),
                            "%s %s answered %d, not in docs/openapi.yaml" % (method, template, got))
        if status == 200 and template in (S_ITEMS, S_ITEM, S_CART, S_SESSION):
            schema_check("CartAnswer", doc)
        elif status >= 400 and status not in (413, 431):
            self.assertEqual(headers.get("Content-Type"), "application/problem+json")
            schema_check("Problem", doc)
            self.assertEqual(doc["status"], status)
            if reason:
                self.assertEqual(doc["reason"], reason, doc)
            if status in (503, 504):
                self.assertTrue(headers.get("Retry-After", "").isdigit(), headers)
        return doc, headers

    def test_g1_every_resource_and_error(self):
        c, h = self.start()
        s = "a1" * 16
        items = "/v1/sessions/%s/items" % s
        doc, _ = self.expect(h, S_ITEMS, "POST", items, 401, {"product": "apple", "qty": 2},
                             reason="UNAUTHORIZED", token=False)
        doc, _ = self.expect(h, S_ITEMS, "POST", items, 200, {"product": "apple", "qty": 2})
        self.assertEqual(doc["items"], [{"product": "apple", "qty": 2}])
        self.assertTrue(doc["cart"] and doc["generation"] >= 1, doc)
        cart = doc["cart"]
        doc, _ = self.expect(h, S_CART, "GET", "/v1/sessions/%s/cart" % s, 200)
        self.assertEqual((doc["cart"], doc["items"]), (cart, [{"product": "apple", "qty": 2}]))
        doc, _ = self.expect(h, S_ITEM, "DELETE", items + "/apple?qty=1", 200)
        self.assertEqual(doc["items"], [{"product": "apple", "qty": 1}])
        doc, _ = self.expect(h, S_ITEM, "DELETE", items + "/plum?qty=1", 404, reason="NOT_IN_CART")
        self.assertEqual(doc["cart"], cart)
        self.expect(h, S_ITEMS, "POST", items, 404, {"product": "durian", "qty": 1},
                    reason="UNKNOWN_PRODUCT")
        doc, _ = self.expect(h, S_ITEMS, "POST", items, 409, {"product": "pear", "qty": 5},
                             reason="OUT_OF_STOCK")
        self.assertEqual(doc["items"], [{"product": "apple", "qty": 1}])  # unchanged
        # Bad input: 400, the field named first, nothing sent.
        for body, raw, field in (({"product": "apple", "qty": 0}, None, "qty"),
                                 ({"qty": 1}, None, "product"),
                                 ({"product": "apple", "qty": "2"}, None, "qty"),
                                 ({"product": "a b", "qty": 1}, None, "product"),
                                 ({"product": "apple", "qty": 1, "x": 1}, None, "x"),
                                 (None, "not json", "body")):
            doc, _ = self.expect(h, S_ITEMS, "POST", items, 400, body, reason="INVALID", raw=raw)
            self.assertTrue(doc["detail"].startswith(field + ":"), doc)
        doc, _ = self.expect(h, S_ITEMS, "POST", "/v1/sessions/xyz/items", 400,
                             {"product": "apple", "qty": 1}, reason="INVALID")
        self.assertTrue(doc["detail"].startswith("session:"), doc)
        doc, _ = self.expect(h, S_ITEM, "DELETE", items + "/apple", 400, reason="INVALID")
        self.assertTrue(doc["detail"].startswith("qty:"), doc)
        self.expect(h, None, "GET", "/v1/nothing", 404, reason="NO_SUCH_RESOURCE")
        self.expect(h, None, "PUT", items, 405, {"product": "apple", "qty": 1},
                    reason="NO_SUCH_RESOURCE")
        got, _, _ = h.call("POST", items, raw="x" * 5000)
        self.assertEqual(got, 413)
        h.close()  # mhd closes a connection after a 413
        # NO_FREE_CART: 4 carts; s holds one, three more sessions take the rest.
        for k in range(3):
            self.expect(h, S_ITEMS, "POST", "/v1/sessions/%s/items" % ("b%d" % k * 16)[:32], 200,
                        {"product": "plum", "qty": 1})
        self.expect(h, S_ITEMS, "POST", "/v1/sessions/%s/items" % ("c" * 32), 503,
                    {"product": "plum", "qty": 1}, reason="NO_FREE_CART")
        doc, _ = self.expect(h, S_SESSION, "DELETE", "/v1/sessions/%s" % s, 200)
        self.expect(h, S_ITEMS, "POST", items, 410, {"product": "apple", "qty": 1},
                    reason="SESSION_CLOSED")
        got, _, st = h.call("GET", "/v1/cluster")
        self.assertEqual(got, 200)
        schema_check("ClusterStatus", st)
        self.assertTrue(any(r["role"] == "leader" for r in st["replicas"]), st)
        leader = [r for r in st["replicas"] if r["role"] == "leader"][0]
        self.assertGreaterEqual(leader["requests_answered"], 8)  # the cart ops above
        self.assertGreaterEqual(leader["requests_recent"], 1)
        self.assertGreater(leader["request_recent_p50_us"], 0)
        got, _, g = h.call("GET", "/v1/gateway")
        self.assertEqual(got, 200)
        schema_check("GatewayCounters", g)
        self.assertGreaterEqual(g["answers"]["4xx"], 10)
        self.assertGreaterEqual(g["latency_us"]["add"]["count"], 5)
        self.assertEqual(g["unauthorized"], 1)
        self.assertGreaterEqual(g["latency_us"]["add"]["recent_count"], 5)
        # /metrics: behind the token, Prometheus' format, the same counts.
        got, _, _ = h.call("GET", "/metrics", token=False)
        self.assertEqual(got, 401)
        got, _, text = h.call("GET", "/metrics")
        self.assertEqual(got, 200)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        m = re.search(r'^zcart_gateway_call_seconds_count\{op="add"\} (\d+)$', text, re.M)
        self.assertIsNotNone(m, text)
        self.assertEqual(int(m.group(1)), g["latency_us"]["add"]["count"])
        self.assertIn('zcart_gateway_unauthorized_total 2\n', text)
        self.assertAllAlive(c)

    def test_g2_exactly_once_over_http(self):
        c, h = self.start()
        s = "d2" * 16
        items = "/v1/sessions/%s/items" % s
        key = {"Idempotency-Key": "order-42-line-1"}
        first, _ = self.expect(h, S_ITEMS, "POST", items, 200, {"product": "apple", "qty": 2},
                               headers=key)
        again, _ = self.expect(h, S_ITEMS, "POST", items, 200, {"product": "apple", "qty": 2},
                               headers=key)
        self.assertEqual(again["seq"], first["seq"])
        self.assertEqual(again["items"], [{"product": "apple", "qty": 2}])
        self.expect(h, S_ITEMS, "POST", items, 422, {"product": "apple", "qty": 3}, headers=key,
                    reason="IDEMPOTENCY_KEY_REUSED")
        seq = {"Zcart-Seq": str(first["seq"] + 1000)}
        for _ in range(2):
            doc, _ = self.expect(h, S_ITEMS, "POST", items, 200, {"product": "plum", "qty": 1},
                                 headers=seq)
            self.assertEqual(doc["seq"], first["seq"] + 1000)
        doc, _ = self.expect(h, S_CART, "GET", "/v1/sessions/%s/cart" % s, 200)
        self.assertEqual(sorted((i["product"], i["qty"]) for i in doc["items"]),
                         [("apple", 2), ("plum", 1)])
        self.expect(h, S_ITEMS, "POST", items, 400, {"product": "apple", "qty": 1},
                    headers={"Zcart-Seq": "0"}, reason="INVALID")

    def test_g3_cluster_failures(self):
        c, h = self.start(gateway_args=["--timeout=1500"], broker_args=["--cart-timeout=500"])
        s = "e3" * 16
        items = "/v1/sessions/%s/items" % s
        doc, _ = self.expect(h, S_ITEMS, "POST", items, 200, {"product": "apple", "qty": 1})
        node = doc["cart"].split(".")[0]
        c.pause(node)
        try:
            self.expect(h, S_ITEMS, "POST", items, 503, {"product": "apple", "qty": 1},
                        reason="CART_UNAVAILABLE")
        finally:
            c.resume(node)
        brokers = ["broker%d" % i for i in (1, 2, 3)]
        for b in brokers:
            c.pause(b)
        try:
            doc, _ = self.expect(h, S_ITEMS, "POST", items, 504, {"product": "apple", "qty": 1},
                                 reason="UNREACHABLE")
            self.assertIn("in_doubt", doc)
            # A gateway with one call at a time: the second request is refused at once.
            port = c.port()
            tiny = c._spawn_extra("gateway9", harness.zcdaemon.gateway_argv(
                harness.BIN, "127.0.0.1:%d" % port, c.client_endpoints,
                c.keys if c.secure else None, c.plan["gateway_token"]) +
                ["--workers", "1", "--max-inflight", "1", "--timeout", "3000"])
            self.assertIsNotNone(tiny)
            h2 = Http("http://127.0.0.1:%d" % port, h.token)
            h3 = Http("http://127.0.0.1:%d" % port, h.token)
            self.addCleanup(h2.close)
            self.addCleanup(h3.close)
            wait_until(lambda: _healthy(port), 15, "gateway9 serving")
            slow = {}
            t = threading.Thread(target=lambda: slow.update(
                r=h2.call("POST", items, {"product": "apple", "qty": 1})))
            t.start()
            wait_until(lambda: h3.call("GET", "/v1/gateway")[2]["in_flight"] == 1, 10,
                       "the first request in flight at gateway9")
            t0 = time.monotonic()
            self.expect(h3, S_ITEMS, "POST", items, 503, {"product": "apple", "qty": 1},
                        reason="GATEWAY_BUSY")
            self.assertLess(time.monotonic() - t0, 1.0)
            t.join(30)
            self.assertEqual(slow["r"][0], 504, slow)
        finally:
            for b in brokers:
                c.resume(b)
        doc, _ = self.expect(h, S_CART, "GET", "/v1/sessions/%s/cart" % s, 200)
        self.assertEqual(doc["items"][0]["product"], "apple")

    def test_g4_the_documented_curl_flow(self):
        c, _ = self.start()
        with open(os.path.join(harness.REPO, "docs", "gateway.md")) as f:
            block = re.search(r"```sh\n(.*?)```", f.read(), re.S).group(1)
        lines = block.splitlines()
        first = next(i for i, l in enumerate(lines) if l.startswith("S="))
        script = "\n".join(l for l in lines[first:]
                           if not l.startswith("#") and "make run" not in l)
        self.assertGreaterEqual(script.count("curl "), 5, script)
        with open(c.plan["gateway_token"]) as f:
            token = f.read().strip()
        env = dict(os.environ, ZCART_GATEWAY=c.plan["gateways"][0], ZCART_GATEWAY_TOKEN=token)
        wrapper = "curl() { command curl -sS -w '\\nHTTP %{http_code}\\n' \"$@\"; }\n"
        r = subprocess.run(["bash", "-euc", wrapper + script], capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        parts = re.findall(r"(.*?)\nHTTP (\d+)\n", r.stdout, re.S)
        self.assertEqual([p[1] for p in parts], ["200"] * 5, r.stdout)
        docs = [json.loads(p[0]) for p in parts]
        for d in docs[:4]:
            schema_check("CartAnswer", d)
        self.assertEqual(docs[0]["items"], [{"product": "apple", "qty": 2}])
        self.assertEqual(docs[1]["items"], [{"product": "apple", "qty": 2}])
        self.assertEqual(docs[2]["items"], [{"product": "apple", "qty": 1}])
        schema_check("ClusterStatus", docs[4])


def _healthy(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    harness.main()
