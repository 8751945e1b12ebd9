/* backend: the cart-side ROUTER.
 *
 * A cart node connects one DEALER per replica whose routing id is its name,
 * "/", and a random nonce fresh per connection ("cart1/9f3a..."; a bare
 * name is accepted too).  Every frame from a node is checked against the
 * name in the routing id it came with -- a node can only speak for itself
 * -- and, secure (lib/zsec.h), against the key it connected with: the key's
 * certificate must have role "cart" and name the node, so no other key can
 * HELLO as a node or answer for it.  The broker sends to a node on the
 * routing id of the last frame that passed those checks (node_info_t.rid),
 * never to a name: a peer that connects under a node's name (or one it
 * guessed) with another key receives nothing, whether the node is
 * connected or not, and cannot keep the node's next connection out either
 * (a fresh nonce, so no two connections share a routing id; no
 * ROUTER_HANDOVER needed).  ZMQ heartbeats end a dead node's connections
 * within seconds.  A HELLO whose name is outside [A-Za-z0-9_-] is refused
 * (its cart ids "<node>.<slot>" must split one way only); anything
 * malformed is dropped and counted (a node never waits for an answer to
 * what it sends here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "broker/liveness.h"
#include "broker/registry.h"
#include "lib/log.h"

int broker__backend_send(broker_t *b, const char *node, const zc_msg_t *m)
{
    const node_info_t *ni = b->nodes ? zc_map_get(b->nodes, node, strlen(node)) : NULL;
    if (ni == NULL || ni->rid[0] == 0) {
        zc_debug("send %s to node %s: no connection of it heard yet", zc_msg_name(m->id), node);
        return -1;
    }
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    int rc = -1;
    if (zc_msg_encode(m, &w) == 0)
        rc = b->io->send_node(b, ni->rid, w.data, w.len);
    if (rc != 0)
        zc_debug("send %s to node %s failed: %s", zc_msg_name(m->id), node,
                 zmq_strerror(zmq_errno()));
    zc_wbuf_clear(&w);
    return rc;
}

static void drop(broker_t *b, const char *what, const char *node)
{
    b->dropped++;
    /* Rate-limited: a flood of junk must not become a flood of log lines. */
    char nn[4 * ZC_NODE_MAX + 1];
    if (zc_log_sampled(b->dropped, 10))
        zc_warn("dropped frame from cart side (%s, node '%s'), %llu so far", what,
                zc_escape(node, ZC_NODE_MAX, nn, sizeof nn),
                (unsigned long long)b->dropped);
}

/* Secure: does the key this frame came with belong to cart node `node`? */
static bool key_is_node(broker_t *b, zmq_msg_t *body, const char *node)
{
    if (zc_sec_insecure(b->sec))
        return true;
    const char *name = zc_sec_peer(body, "name");
    return zc_sec_role_ok(b->sec, body, "cart") && name != NULL && strcmp(name, node) == 0;
}

/* A frame from `node` passed the checks on routing id `rid`: send there. */
static void remember_rid(broker_t *b, const char *node, const char *rid)
{
    node_info_t *ni = zc_map_get(b->nodes, node, strlen(node));
    if (ni != NULL && strcmp(ni->rid, rid) != 0)
        snprintf(ni->rid, sizeof ni->rid, "%s", rid);
}

static void on_frame(broker_t *b, const char *node, const char *rid, zmq_msg_t *body)
{
    const void *data = zmq_msg_data(body);
    size_t len = zmq_msg_size(body);
    if (!key_is_node(b, body, node)) {
        b->forbidden++;
        b->dropped++; /* a dropped frame like any other, and counted as forbidden */
        const char *uid = zc_sec_peer(body, "User-Id"), *kn = zc_sec_peer(body, "name");
        char u[64], k[80], nn[4 * ZC_NODE_MAX + 1];
        if (zc_log_sampled(b->forbidden, 20))
            zc_warn("FORBIDDEN cart-port frame for node '%s' from key %s (cert name '%s'), "
                    "%llu refused so far", zc_escape(node, ZC_NODE_MAX, nn, sizeof nn), zc_escape(uid ? uid : "?", 40, u, sizeof u),
                    zc_escape(kn ? kn : "", 64, k, sizeof k), (unsigned long long)b->forbidden);
        return;
    }
    zc_msg_t m;
    const char *why;
    zc_msg_init(&m, 0);
    if (zc_msg_decode(&m, data, len, &why) != 0) {
        drop(b, why, node);
        return;
    }
    switch (m.id) {
    case ZC_MSG_HELLO:
        if (strcmp(m.node, node) != 0)
            drop(b, "HELLO names another node", node);
        else if (!zc_node_name_valid(node))
            /* "a.b" would make cart "a.b.0", ambiguous with node "a", slot "b.0". */
            drop(b, "node name outside 1..32 of [A-Za-z0-9_-]", node);
        else if (zc_map_get(b->nodes, node, strlen(node)) == NULL &&
                 zc_map_size(b->nodes) >= BROKER_NODES_MAX && !broker__registry_make_room(b))
            /* Bound what names can cost; a removed node's name is freed. */
            drop(b, "too many cart nodes (BROKER_NODES_MAX)", node);
        else {
            broker__registry_hello(b, &m);
            remember_rid(b, node, rid);
            broker__route_node_connected(b, node);
            /* Every replica answers: the node watches each one's liveness. */
            zc_msg_t hb;
            zc_msg_init(&hb, ZC_MSG_HEARTBEAT);
            snprintf(hb.node, sizeof hb.node, "%s", node);
            zc_node_info_t info;
            broker__info(b, &info);
            hb.replica = b->cfg.id;
            hb.term = info.ready ? info.term : 0; /* the node's readiness: it reaches the leader */
            broker__backend_send(b, node, &hb);
        }
        break;
    case ZC_MSG_CART_REPLY:
        remember_rid(b, node, rid);
        broker__route_cart_reply(b, node, &m);
        break;
    case ZC_MSG_RESET_DONE:
        if (strcmp(m.node, node) != 0)
            drop(b, "RESET_DONE names another node", node);
        else {
            remember_rid(b, node, rid);
            broker__reset_done(b, node, &m);
        }
        break;
    default:
        drop(b, "unexpected message", node);
    }
    zc_msg_reset(&m);
}

static void on_message(zc_zmsg_t *z, void *arg)
{
    broker_t *b = arg;
    /* Routing id: NAME, or NAME "/" nonce (a fresh connection's). */
    char rid[ZC_NODE_RID_MAX + 1] = "", node[ZC_NODE_MAX + 1] = "";
    size_t idlen = z->n >= 1 ? zc_zmsg_size(z, 0) : 0;
    if (idlen > 0 && idlen <= ZC_NODE_RID_MAX && !memchr(zc_zmsg_data(z, 0), 0, idlen)) {
        memcpy(rid, zc_zmsg_data(z, 0), idlen);
        rid[idlen] = 0;
        size_t nl = strcspn(rid, "/");
        if (nl > 0 && nl <= ZC_NODE_MAX && (rid[nl] == 0 || nl + 1 + ZC_NODE_NONCE_HEX == idlen)) {
            memcpy(node, rid, nl);
            node[nl] = 0;
        }
    }
    if (node[0] == 0)
        drop(b, "peer without a node-name routing id", "?");
    else if (z->n != 2 || z->over)
        drop(b, "a message must be exactly one frame", node);
    else
        on_frame(b, node, rid, &z->part[1]);
}

static void on_readable(void *sock, void *arg) { zc_zmsg_each(sock, on_message, arg); }

static void back_setup(broker_t *b, void *sock)
{
    if (zc_sec_insecure(b->sec)) {
        /* A node (or a test) with a bare name takes it over at once. */
        int one = 1;
        zmq_setsockopt(sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    } else {
        int ivl = 1000, ttl = 3000;
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    }
}

int broker__backend_open(broker_t *b, char *err, size_t errlen)
{
    broker__router_t r = {.what = "cart",
                          .endpoint = b->self->cart_endpoint,
                          .roles = "cart",
                          .hwm = 100000,
                          .setup = back_setup,
                          .on_readable = on_readable,
                          .sock = &b->back,
                          .watch = &b->back_w};
    return broker__router_open(b, &r, err, errlen);
}

void broker__backend_close(broker_t *b) { broker__router_close(&b->back, &b->back_w); }

bool broker__split_cart(const char *cart, char node[ZC_NODE_MAX + 1], uint16_t *slot)
{
    const char *dot = strrchr(cart, '.');
    if (dot == NULL || dot == cart || (size_t)(dot - cart) > ZC_NODE_MAX || !dot[1])
        return false;
    char *end;
    unsigned long s = strtoul(dot + 1, &end, 10);
    if (*end != 0 || s > 65535)
        return false;
    memcpy(node, cart, (size_t)(dot - cart));
    node[dot - cart] = 0;
    *slot = (uint16_t)s;
    return true;
}
