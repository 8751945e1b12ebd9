/* registry: see registry.h. */
#include "broker/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/lease.h"
#include "broker/liveness.h"
#include "lib/clock.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "proto/status.h"

typedef struct {
    broker_t *b;                /* the broker */
    char node[ZC_NODE_MAX + 1]; /* node whose REGISTER this is */
} register_ctx_t;

node_info_t *broker__registry_node(broker_t *b, const char *name)
{
    node_info_t *n = zc_map_get(b->nodes, name, strlen(name));
    if (n == NULL) {
        n = calloc(1, sizeof *n);
        if (n == NULL)
            return NULL;
        snprintf(n->name, sizeof n->name, "%s", name);
        if (zc_map_put(b->nodes, name, strlen(name), n) != 0) {
            free(n);
            return NULL;
        }
    }
    return n;
}

/* Drain the node's DRAINING carts (slots registered dirty). */
static int drain_dirty(const zc_cart_rec_t *c, void *arg)
{
    if (c->state == ZC_CART_DRAINING)
        broker__drain_cart(arg, c->id, c->generation);
    return 0;
}

static void register_done(void *arg, int status, const zc_cmd_result_t *res)
{
    register_ctx_t *ctx = arg;
    node_info_t *n = zc_map_get(ctx->b->nodes, ctx->node, strlen(ctx->node));
    if (n)
        n->register_pending = false;
    if (status == ZC_OK && (res->count > 0 || res->moved > 0)) {
        zc_info("registered %u cart(s) of node %s, %u known one(s) to drain (the node holds "
                "newer contents)",
                res->count, ctx->node, res->moved);
        if (!ctx->b->stopping) /* those that held something drain first (drain.c) */
            zc_state_each_node_cart(broker__state(ctx->b), ctx->node, drain_dirty, ctx->b);
    }
    free(ctx);
}

/* An UNREGISTER in flight: what the leader cleans up once it commits. */
typedef struct {
    broker_t *b;                         /* the broker */
    char node[ZC_NODE_MAX + 1];          /* the node */
    bool all;                            /* remove-cart-node: forget the name too */
    size_t n;                            /* entries in carts */
    char (*carts)[ZC_CART_MAX + 1];      /* the carts named (their volatile records go) */
    size_t n_sessions;                   /* entries in sessions */
    uint8_t (*sessions)[ZC_SESSION_LEN]; /* sessions of ASSIGNED ones (a lease may go) */
    zc_propose_cb cb;                    /* the admin request's callback, or NULL */
    void *arg;                           /* its argument */
} unreg_ctx_t;

static void unreg_ctx_free(unreg_ctx_t *ctx)
{
    free(ctx->carts);
    free(ctx->sessions);
    free(ctx);
}

static int unreg_add(unreg_ctx_t *ctx, const zc_cart_rec_t *c)
{
    void *p = realloc(ctx->carts, (ctx->n + 1) * sizeof *ctx->carts);
    if (p == NULL)
        return -1;
    ctx->carts = p;
    snprintf(ctx->carts[ctx->n++], sizeof ctx->carts[0], "%s", c->id);
    if (c->state == ZC_CART_ASSIGNED) {
        p = realloc(ctx->sessions, (ctx->n_sessions + 1) * sizeof *ctx->sessions);
        if (p == NULL)
            return -1;
        ctx->sessions = p;
        memcpy(ctx->sessions[ctx->n_sessions++], c->session, ZC_SESSION_LEN);
    }
    return 0;
}

static void unregister_done(void *arg, int status, const zc_cmd_result_t *res)
{
    unreg_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    node_info_t *n = zc_map_get(b->nodes, ctx->node, strlen(ctx->node));
    if (n)
        n->unregister_pending = false;
    if (status == ZC_OK && res->status == ZC_OK && !b->stopping) {
        zc_state_t *st = broker__state(b);
        zc_cart_rec_t rec;
        zc_session_rec_t sess;
        for (size_t i = 0; i < ctx->n; i++)
            if (zc_state_get_cart(st, ctx->carts[i], &rec) == 1) {
                broker__drain_forget_cart(b, ctx->carts[i]);
                broker__liveness_forget_cart(b, ctx->carts[i]);
            }
        for (size_t i = 0; i < ctx->n_sessions; i++)
            if (zc_state_get_session(st, ctx->sessions[i], &sess) == 0 &&
                sess.state != ZC_SESS_LIVE)
                broker__lease_forget(b, ctx->sessions[i]);
        if (ctx->all && n && !n->register_pending) {
            zc_dq_remove(&b->node_q, &n->due);
            zc_map_del(b->nodes, ctx->node, strlen(ctx->node));
            free(n);
        }
        if (res->count > 0)
            zc_warn("unregistered %u cart(s) of node %s%s: %u session(s) moved to another cart "
                    "(CART_LOST), %u ended (no free cart)",
                    res->count, ctx->node,
                    ctx->all ? " (remove-cart-node)" : " (slots its HELLO no longer lists)",
                    res->moved, res->ended);
    }
    if (ctx->cb)
        ctx->cb(ctx->arg, status, res);
    unreg_ctx_free(ctx);
}

/* Propose UNREGISTER for ctx (its carts listed); takes ctx. */
static void unregister_propose(broker_t *b, unreg_ctx_t *ctx)
{
    zc_cmd_t c = {.type = ZC_CMD_UNREGISTER, .time_ms = zc_wall_ms()};
    snprintf(c.unreg.node, sizeof c.unreg.node, "%s", ctx->node);
    c.unreg.all = ctx->all;
    for (size_t i = 0; !ctx->all && i < ctx->n && c.unreg.n < ZC_REGISTER_MAX; i++) {
        char node[ZC_NODE_MAX + 1];
        uint16_t slot;
        if (broker__split_cart(ctx->carts[i], node, &slot))
            c.unreg.slots[c.unreg.n++] = slot;
    }
    node_info_t *n = zc_map_get(b->nodes, ctx->node, strlen(ctx->node));
    if (n)
        n->unregister_pending = true;
    broker__propose(b, &c, unregister_done, ctx);
}

/* Collects a node's carts whose slots its HELLO does not list. */
typedef struct {
    const uint8_t *listed; /* bitmap over slot numbers: in the HELLO */
    unreg_ctx_t *ctx;      /* where orphans go */
    int rc;                /* -1 when out of memory */
} orphans_t;

static int find_orphan(const zc_cart_rec_t *c, void *arg)
{
    orphans_t *o = arg;
    if (o->listed[c->slot / 8] & (1u << (c->slot % 8)))
        return 0;
    if (o->ctx->n >= ZC_REGISTER_MAX)
        return 1; /* one command's worth; the next HELLO finds the rest */
    if (unreg_add(o->ctx, c) != 0) {
        o->rc = -1;
        return 1;
    }
    return 0;
}

/* Registered carts of the node that its HELLO does not list: unregister.
 * 0 when there are none, 1 when some are being unregistered or the look
 * failed. */
static int unregister_orphans(broker_t *b, node_info_t *n, const zc_msg_t *hello)
{
    uint8_t *listed = calloc(65536 / 8, 1);
    unreg_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (listed == NULL || ctx == NULL) {
        free(listed);
        free(ctx);
        return 1;
    }
    for (unsigned i = 0; i < hello->n_slots; i++)
        listed[hello->slots[i].slot / 8] |= (uint8_t)(1u << (hello->slots[i].slot % 8));
    ctx->b = b;
    snprintf(ctx->node, sizeof ctx->node, "%s", n->name);
    orphans_t o = {listed, ctx, 0};
    int rc = zc_state_each_node_cart(broker__state(b), n->name, find_orphan, &o);
    free(listed);
    if (rc != 0 || o.rc != 0 || ctx->n == 0) {
        unreg_ctx_free(ctx);
        return rc != 0 || o.rc != 0;
    }
    zc_info("node %s no longer has %zu registered slot(s) (first %s): unregistering them", n->name,
            ctx->n, ctx->carts[0]);
    unregister_propose(b, ctx);
    return 1;
}

static int collect_all(const zc_cart_rec_t *c, void *arg) { return unreg_add(arg, c) != 0 ? 1 : 0; }

void broker__registry_remove_node(broker_t *b, const char *node, zc_propose_cb cb, void *arg)
{
    unreg_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        zc_cmd_result_t res = {.status = ZC_INTERNAL};
        cb(arg, ZC_OK, &res);
        return;
    }
    ctx->b = b;
    snprintf(ctx->node, sizeof ctx->node, "%s", node);
    ctx->all = true;
    ctx->cb = cb;
    ctx->arg = arg;
    /* Best effort: the list only says whose volatile records to drop. */
    zc_state_each_node_cart(broker__state(b), node, collect_all, ctx);
    unregister_propose(b, ctx);
}

static int has_cart(const zc_cart_rec_t *c, void *arg)
{
    (void)c;
    *(bool *)arg = true;
    return 1;
}

/* Names broker__registry_make_room may drop. */
typedef struct {
    broker_t *b;                                   /* the broker */
    uint64_t now_us;                               /* monotonic now */
    size_t n;                                      /* entries in names */
    char names[BROKER_NODES_MAX][ZC_NODE_MAX + 1]; /* silent names without carts */
} room_t;

static int room_scan(const void *k, size_t kl, void *v, void *arg)
{
    room_t *r = arg;
    node_info_t *n = v;
    bool any = false;
    (void)k;
    (void)kl;
    if (r->now_us - n->last_hello_us <= (uint64_t)r->b->cfg.cart_liveness_ms * 1000u ||
        n->register_pending || n->unregister_pending || r->n >= BROKER_NODES_MAX)
        return 0;
    if (zc_state_each_node_cart(broker__state(r->b), n->name, has_cart, &any) != 0 || any)
        return 0;
    snprintf(r->names[r->n++], sizeof r->names[0], "%s", n->name);
    return 0;
}

bool broker__registry_make_room(broker_t *b)
{
    uint64_t now = zc_mono_us();
    if (b->last_room_us && now - b->last_room_us < 1000000u)
        return false; /* at most one sweep a second, whatever a flood of names does */
    b->last_room_us = now;
    room_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return false;
    r->b = b;
    r->now_us = now;
    zc_map_each(b->nodes, room_scan, r);
    for (size_t i = 0; i < r->n; i++) {
        node_info_t *n = zc_map_del(b->nodes, r->names[i], strlen(r->names[i]));
        if (n)
            zc_dq_remove(&b->node_q, &n->due);
        free(n);
    }
    if (r->n > 0)
        zc_info("node map full: forgot %zu silent name(s) without registered carts", r->n);
    free(r);
    return zc_map_size(b->nodes) < BROKER_NODES_MAX;
}

/* A HELLO's slot numbers, hashed in order, and the highest generation any
 * of its slots has seen. */
static uint64_t hello_slots(const zc_msg_t *hello, uint64_t *max_seen)
{
    uint64_t h = ZC_FNV64_INIT;
    *max_seen = 0;
    for (unsigned i = 0; i < hello->n_slots; i++) {
        const zc_slotinfo_t *si = &hello->slots[i];
        uint64_t seen =
            si->generation > si->reset_generation ? si->generation : si->reset_generation;
        if (seen > *max_seen)
            *max_seen = seen;
        h = zc_fnv64(h, &si->slot, sizeof si->slot);
    }
    return h;
}

/* Every second each node lists every slot it hosts: at 100k carts that is
 * 100k registry lookups a second on the leader.  A HELLO that lists the same
 * slots as the last one that needed nothing, when no cart was registered or
 * forgotten since and no slot has seen a generation the cluster has not
 * handed out, needs nothing either: it is settled without a lookup. */
static bool hello_is_settled(broker_t *b, const node_info_t *n, uint64_t slots_hash,
                             uint64_t max_seen, uint64_t next_gen)
{
    return n->hello_settled && !n->unregister_pending &&
           n->settled_epoch == zc_state_registry_epoch(broker__state(b)) &&
           n->settled_slots == slots_hash && max_seen < next_gen;
}

void broker__registry_hello(broker_t *b, const zc_msg_t *hello)
{
    node_info_t *n = broker__registry_node(b, hello->node);
    if (n == NULL)
        return;
    n->last_hello_us = zc_mono_us();
    n->last_hello_wall_ms = zc_wall_ms();
    broker__liveness_heard(b, n);
    if (!broker__ready(b) || n->register_pending)
        return;
    zc_state_t *st = broker__state(b);
    uint64_t next_gen = zc_state_meta(st, "next_gen"), max_seen;
    uint64_t slots_hash = hello_slots(hello, &max_seen);
    uint64_t epoch = zc_state_registry_epoch(st);
    if (hello_is_settled(b, n, slots_hash, max_seen, next_gen))
        return;
    n->hello_settled = false;
    zc_cmd_slot_t *slots = calloc(hello->n_slots ? hello->n_slots : 1, sizeof *slots);
    if (slots == NULL)
        return;
    uint16_t k = 0;
    bool unread = false;
    for (unsigned i = 0; i < hello->n_slots; i++) {
        const zc_slotinfo_t *si = &hello->slots[i];
        char id[ZC_CART_MAX + 1];
        zc_cart_rec_t rec;
        uint64_t seen =
            si->generation > si->reset_generation ? si->generation : si->reset_generation;
        snprintf(id, sizeof id, "%s.%u", hello->node, si->slot);
        int rc = zc_state_get_cart(st, id, &rec);
        /* A known cart goes in too when the node has seen a generation the
         * state has not reached (a state restored from a backup older than
         * the node's data, or recovered from a replica that missed the
         * last assignments): its REGISTER raises next_gen above it, so new
         * assignments are not fenced.  Registering a known cart changes
         * nothing else (apply_register). */
        unread |= rc < 0;
        if (rc < 0 || (rc == 0 && seen < next_gen))
            continue; /* known and behind the state (or unreadable: next HELLO) */
        slots[k].slot = si->slot;
        slots[k].generation = seen;
        slots[k].dirty = !zc_session_is_zero(si->session) || si->n_items > 0;
        k++;
    }
    if (k > 0) {
        register_ctx_t *ctx = malloc(sizeof *ctx);
        if (ctx) {
            zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = zc_wall_ms()};
            snprintf(c.reg.node, sizeof c.reg.node, "%s", hello->node);
            c.reg.n = k;
            c.reg.slots = slots;
            ctx->b = b;
            snprintf(ctx->node, sizeof ctx->node, "%s", hello->node);
            n->register_pending = true;
            broker__propose(b, &c, register_done, ctx);
        }
    }
    free(slots);
    if (n->unregister_pending || unregister_orphans(b, n, hello) != 0 || k > 0 || unread)
        return;
    n->hello_settled = true;
    n->settled_epoch = epoch;
    n->settled_slots = slots_hash;
}

static int clear_pending(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    (void)arg;
    ((node_info_t *)v)->register_pending = false;
    return 0;
}

void broker__registry_forget_all(broker_t *b) { zc_map_each(b->nodes, clear_pending, NULL); }

void broker__registry_destroy(broker_t *b)
{
    zc_dq_clear(&b->node_q);
    if (b->nodes)
        zc_map_each(b->nodes, zc_map_free_value, NULL);
    zc_map_destroy(&b->nodes);
}
