/* liveness: cart liveness and the breakers, as the leader drives them.
 *
 * A cart's breaker record is replicated (replication/breaker.h: every move
 * is one committed BREAKER command, checked by the transition table on
 * every replica).  This file only decides *when* to propose a move, from
 * what the leader sees and nobody else needs to:
 *
 *   its node sent no HELLO for --cart-liveness   CLOSED    -> TRIP (heartbeat)
 *     (counted from the later of the last HELLO and the moment this replica
 *     became a ready leader, so a new leader gives every node a full window;
 *     likewise after this process itself stalled, e.g. SIGSTOP)
 *   --breaker-failures consecutive operations
 *     that timed out or failed in the cart       CLOSED    -> TRIP (failures)
 *   OPEN for the open wait of its trip count     OPEN      -> WAIT_OVER
 *     (leader wall clock against the record's since_ms, so a new leader
 *     continues the wait its predecessor started -- or the wait's length on
 *     this leader's monotonic clock, whichever ends first: breaker_age_ms)
 *   a HELLO after the breaker went half-open,
 *     unless it opened for failed operations     HALF_OPEN -> PROBE_OK
 *   its node still silent for --cart-liveness    HALF_OPEN -> PROBE_FAIL (heartbeat)
 *   a request admitted as a probe (route.c)      HALF_OPEN -> PROBE, then PROBE_OK or
 *                                                             PROBE_FAIL (failures) --
 *     only while still in the HALF_OPEN period that admitted it (its since_ms)
 *   a FREE cart, its node heard (no session
 *     to send it probes): the leader probes it
 *     itself with a RESET of the cart's
 *     generation                                 HALF_OPEN -> PROBE, then PROBE_OK on
 *                                                             its RESET_DONE
 *
 * The last rule keeps a released cart from leaking out of service: a cart
 * whose breaker tripped for failures while a session held it is reset and
 * freed, but free carts whose breaker is not CLOSED are never assigned and
 * a HELLO does not close a breaker opened for failures, so without a probe
 * of its own it would stay HALF_OPEN for ever.  The RESET is the probe
 * because it is the one message a free cart's node must handle: it is
 * idempotent (the slot is empty and has no owner), goes through the slot's
 * storage like an operation, and is fenced by generation (a stale one can
 * never empty a newer owner's cart).  It is counted by a committed PROBE like
 * a request probe, so an unanswered one ends as they do: no RESET_DONE
 * within 2 x --cart-timeout of the HALF_OPEN -> PROBE_FAIL (failures).
 *
 * and, past breakers, cart loss: an ASSIGNED cart whose node stayed silent
 * for --cart-lost-after is lost.  The leader commits REASSIGN: the session
 * moves to a fresh cart (its items are gone) and its client is told
 * CART_LOST on its next request (route.c); the lost cart drains, so it is
 * reset by generation before anybody else gets it, whenever it returns.
 *
 * Timers.  The rules above are driven so that a tick does not cost
 * O(carts): a cart whose breaker is CLOSED on a node that is heard from
 * needs nothing, so a scan visits only (a) the carts whose breaker is not
 * CLOSED-and-automatic, through the state's breaker index (brkidx,
 * replication/state.h), and (b) the carts of the nodes that came due in a
 * deadline queue of nodes (lib/dq.h) keyed by when each would have been
 * silent for --cart-liveness: a HELLO moves its node's deadline, and a
 * node that pops while still silent has its carts visited (trip, and
 * after --cart-lost-after, loss), again every LIVENESS_SCAN_MS while a
 * proposal for one of them is still to be made, then at its loss
 * deadline, then not until its next HELLO.  When this replica becomes a
 * ready leader it walks the registry once to queue every node that has
 * carts (broker__liveness_start), so a node that never says HELLO to it is still
 * found silent.
 *
 * At most one proposal per cart is in flight.  A proposal the table refuses
 * when it applies (another event got there first) changes nothing, so the
 * volatile bookkeeping here can be lost at any time -- a new leader simply
 * starts from the committed records. */
#include "broker/liveness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/registry.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* What the leader remembers about one cart's breaker between scans. */
typedef struct {
    unsigned failures;      /* consecutive failed operations since the last success */
    bool pending;           /* a BREAKER proposal for it is in flight */
    uint64_t probe_sent_us; /* a free cart's RESET probe went out then (monotonic), 0 none */
    uint64_t probe_gen;     /* the generation that RESET named */
    uint8_t seen_state;     /* breaker state (and since_ms below) this leader last saw */
    uint64_t seen_since_ms; /* ... its record's since_ms */
    uint64_t seen_us;       /* when this leader first saw that record (monotonic), 0 never */
} brk_info_t;

/* Argument of a BREAKER proposal's callback. */
typedef struct {
    broker_t *b;               /* the broker */
    char cart[ZC_CART_MAX + 1]; /* the cart */
    uint8_t ev;                /* the event proposed */
    uint8_t from;              /* the state it was proposed from (for the log) */
    uint64_t generation;       /* REASSIGN: the lost assignment (its cart drains) */
} brk_ctx_t;

static brk_info_t *info_get(broker_t *b, const char *cart)
{
    if (b->breakers == NULL)
        return NULL;
    brk_info_t *i = zc_map_get(b->breakers, cart, strlen(cart));
    if (i == NULL) {
        i = calloc(1, sizeof *i);
        if (i == NULL)
            return NULL;
        if (zc_map_put(b->breakers, cart, strlen(cart), i) != 0) {
            free(i);
            return NULL;
        }
    }
    return i;
}

zc_brk_policy_t broker__liveness_policy(const broker_t *b)
{
    zc_brk_policy_t p = {.open_wait_ms = b->cfg.breaker_wait_ms,
                         .open_wait_max_ms = b->cfg.breaker_wait_max_ms,
                         .max_probes = (uint16_t)b->cfg.breaker_probes};
    return p;
}

static void propose_done(void *arg, int status, const zc_cmd_result_t *res)
{
    brk_ctx_t *ctx = arg;
    brk_info_t *i =
        ctx->b->breakers ? zc_map_get(ctx->b->breakers, ctx->cart, strlen(ctx->cart)) : NULL;
    if (i)
        i->pending = false;
    if (status == ZC_OK && res->status == ZC_OK && res->breaker.state != ctx->from) {
        const zc_breaker_t *k = &res->breaker;
        if (k->state == ZC_BRK_OPEN)
            zc_warn("cart %s breaker %s -> OPEN (%s, trip %u)", ctx->cart,
                    zc_breaker_state_name(ctx->from), zc_breaker_why_name(k->why), k->trips);
        else
            zc_info("cart %s breaker %s -> %s", ctx->cart, zc_breaker_state_name(ctx->from),
                    zc_breaker_state_name(k->state));
    }
    free(ctx);
}

void broker__liveness_propose(broker_t *b, const char *cart, uint8_t from, int ev, int why,
                              zc_propose_cb cb, void *arg)
{
    zc_cmd_t c = {.type = ZC_CMD_BREAKER, .time_ms = zc_wall_ms()};
    snprintf(c.brk.cart, sizeof c.brk.cart, "%s", cart);
    c.brk.ev = (uint8_t)ev;
    c.brk.why = (uint8_t)why;
    c.brk.max_probes = (uint16_t)b->cfg.breaker_probes;
    if (cb) {
        broker__propose(b, &c, cb, arg);
        return;
    }
    brk_info_t *i = info_get(b, cart);
    brk_ctx_t *ctx = malloc(sizeof *ctx);
    if (i == NULL || ctx == NULL || i->pending) {
        free(ctx);
        return;
    }
    ctx->b = b;
    snprintf(ctx->cart, sizeof ctx->cart, "%s", cart);
    ctx->ev = (uint8_t)ev;
    ctx->from = from;
    i->pending = true;
    broker__propose(b, &c, propose_done, ctx);
}

/* One scan's context. */
typedef struct {
    broker_t *b;      /* the broker */
    uint64_t now_us;  /* monotonic now */
    uint64_t now_ms;  /* wall now, the clock breaker records use */
    bool again;       /* a node walk left a cart with work still to propose */
    bool assigned;    /* a node walk saw an ASSIGNED cart (loss is still ahead) */
} scan_t;

static void reassign_done(void *arg, int status, const zc_cmd_result_t *res)
{
    brk_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    brk_info_t *i = b->breakers ? zc_map_get(b->breakers, ctx->cart, strlen(ctx->cart)) : NULL;
    if (i)
        i->pending = false;
    if (status == ZC_OK && res->status == ZC_OK) {
        zc_warn("cart %s lost (its node silent for %u ms): its session moved to %s gen %llu",
                ctx->cart, b->cfg.cart_lost_ms, res->cart, (unsigned long long)res->generation);
        broker__drain_cart(b, ctx->cart, ctx->generation); /* reset when its node returns */
    }
    else if (status == ZC_OK && res->status == ZC_NO_FREE_CART)
        zc_warn("cart %s lost but no free cart to move its session to; retrying", ctx->cart);
    free(ctx);
}

/* Commit the loss of an ASSIGNED cart (at most one proposal per cart). */
static void reassign(broker_t *b, const zc_cart_rec_t *c)
{
    brk_info_t *i = info_get(b, c->id);
    brk_ctx_t *ctx = malloc(sizeof *ctx);
    if (i == NULL || ctx == NULL || i->pending) {
        free(ctx);
        return;
    }
    ctx->b = b;
    snprintf(ctx->cart, sizeof ctx->cart, "%s", c->id);
    ctx->generation = c->generation;
    i->pending = true;
    zc_cmd_t cmd = {.type = ZC_CMD_REASSIGN, .time_ms = zc_wall_ms()};
    snprintf(cmd.reassign.cart, sizeof cmd.reassign.cart, "%s", c->id);
    cmd.reassign.generation = c->generation;
    broker__propose(b, &cmd, reassign_done, ctx);
}

/* Argument of a free cart's PROBE proposal. */
typedef struct {
    broker_t *b;                /* the broker */
    char cart[ZC_CART_MAX + 1]; /* the free cart probed */
    uint64_t generation;        /* its generation: the RESET names it */
} free_probe_ctx_t;

/* The PROBE of a free cart committed: send the RESET that is the probe. */
static void free_probe_done(void *arg, int status, const zc_cmd_result_t *res)
{
    free_probe_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    brk_info_t *i = b->breakers ? zc_map_get(b->breakers, ctx->cart, strlen(ctx->cart)) : NULL;
    char node[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (i)
        i->pending = false;
    if (i && status == ZC_OK && res->status == ZC_OK &&
        broker__split_cart(ctx->cart, node, &slot)) {
        zc_msg_t m;
        zc_msg_init(&m, ZC_MSG_RESET);
        m.slot = slot;
        m.generation = ctx->generation;
        i->probe_sent_us = zc_mono_us();
        i->probe_gen = ctx->generation;
        if (broker__backend_send(b, node, &m) == 0)
            zc_info("cart %s is free and HALF_OPEN: probing it with a RESET of gen %llu", ctx->cart,
                    (unsigned long long)ctx->generation);
    }
    free(ctx);
}

/* Probe a free HALF_OPEN cart (at most one probe out per cart). */
static void probe_free(broker_t *b, const zc_cart_rec_t *c, uint64_t now_us)
{
    brk_info_t *i = info_get(b, c->id);
    if (i == NULL || i->pending ||
        (i->probe_sent_us && now_us - i->probe_sent_us < (uint64_t)b->cfg.cart_timeout_ms * 1000u))
        return;
    free_probe_ctx_t *ctx = malloc(sizeof *ctx);
    if (ctx == NULL)
        return;
    ctx->b = b;
    snprintf(ctx->cart, sizeof ctx->cart, "%s", c->id);
    ctx->generation = c->generation;
    i->pending = true;
    i->probe_sent_us = 0;
    broker__liveness_propose(b, c->id, ZC_BRK_HALF_OPEN, ZC_BRK_EV_PROBE, ZC_BRK_WHY_NONE,
                             free_probe_done, ctx);
}

void broker__liveness_reset_done(broker_t *b, const char *id, const zc_cart_rec_t *rec)
{
    brk_info_t *i = b->breakers ? zc_map_get(b->breakers, id, strlen(id)) : NULL;
    if (i == NULL || i->probe_sent_us == 0 || i->probe_gen != rec->generation ||
        rec->state != ZC_CART_FREE || rec->breaker.state != ZC_BRK_HALF_OPEN ||
        rec->breaker.mode != ZC_BRK_AUTO)
        return; /* not the answer to a probe of ours, or too late to matter */
    i->probe_sent_us = 0;
    broker__liveness_propose(b, id, ZC_BRK_HALF_OPEN, ZC_BRK_EV_PROBE_OK, ZC_BRK_WHY_NONE, NULL,
                             NULL);
}

/* How long the breaker has been in its state, in ms.  Its record's
 * since_ms is the deciding leader's wall clock, so that a new leader
 * continues a wait its predecessor started; but a wall clock can jump (an
 * NTP step, an operator): a trip decided by a leader whose clock ran ahead
 * has a since_ms in the future, and its OPEN wait would last as long as the
 * jump.  So the age is the larger of the wall-clock age and how long this
 * leader has itself seen the record (monotonic): a wait never lasts more
 * than its length on this leader, whatever the clocks did; a jump forward
 * can only end it early (an early probe). */
static uint64_t breaker_age_ms(broker_t *b, const zc_cart_rec_t *c, const scan_t *s)
{
    const zc_breaker_t *k = &c->breaker;
    uint64_t wall = s->now_ms > k->since_ms ? s->now_ms - k->since_ms : 0;
    brk_info_t *i = info_get(b, c->id);
    if (i == NULL)
        return wall;
    if (i->seen_us == 0 || i->seen_state != k->state || i->seen_since_ms != k->since_ms) {
        i->seen_state = k->state;
        i->seen_since_ms = k->since_ms;
        i->seen_us = s->now_us;
    }
    uint64_t mono = (s->now_us - i->seen_us) / 1000u;
    return wall > mono ? wall : mono;
}

/* A HELLO from n came after the breaker went HALF_OPEN: by the wall clock
 * (the record's since_ms), or after this leader first saw it HALF_OPEN. */
static bool heard_since(broker_t *b, const zc_cart_rec_t *c, const node_info_t *n)
{
    if (n->last_hello_wall_ms > c->breaker.since_ms)
        return true;
    const brk_info_t *i = b->breakers ? zc_map_get(b->breakers, c->id, strlen(c->id)) : NULL;
    return i != NULL && i->seen_us != 0 && i->seen_state == c->breaker.state &&
           i->seen_since_ms == c->breaker.since_ms && n->last_hello_us > i->seen_us;
}

static int scan_one(const zc_cart_rec_t *c, void *arg)
{
    scan_t *s = arg;
    broker_t *b = s->b;
    const zc_breaker_t *k = &c->breaker;
    brk_info_t *i = b->breakers ? zc_map_get(b->breakers, c->id, strlen(c->id)) : NULL;
    if (i && i->pending) {
        s->again = true; /* look again once it has committed */
        return 0;
    }
    const node_info_t *n = zc_map_get(b->nodes, c->node, strlen(c->node));
    uint64_t heard_us = n && n->last_hello_us > b->ready_since_us ? n->last_hello_us
                                                                  : b->ready_since_us;
    bool silent = s->now_us - heard_us > (uint64_t)b->cfg.cart_liveness_ms * 1000u;
    if (c->state == ZC_CART_ASSIGNED)
        s->assigned = true;
    if (c->state == ZC_CART_ASSIGNED &&
        s->now_us - heard_us > (uint64_t)b->cfg.cart_lost_ms * 1000u) {
        reassign(b, c); /* whatever its breaker: a lost cart is lost */
        s->again = true;
        return 0;
    }
    if (k->mode != ZC_BRK_AUTO)
        return 0;
    zc_brk_policy_t p = broker__liveness_policy(b);
    uint64_t age_ms = k->state == ZC_BRK_CLOSED ? 0 : breaker_age_ms(b, c, s);
    switch (k->state) {
    case ZC_BRK_CLOSED:
        if (silent) {
            broker__liveness_propose(b, c->id, k->state, ZC_BRK_EV_TRIP, ZC_BRK_WHY_HEARTBEAT, NULL,
                                     NULL);
            s->again = true;
        }
        break;
    case ZC_BRK_OPEN:
        if (age_ms >= zc_breaker_open_wait_ms(k, &p))
            broker__liveness_propose(b, c->id, k->state, ZC_BRK_EV_WAIT_OVER, ZC_BRK_WHY_NONE, NULL,
                                     NULL);
        break;
    case ZC_BRK_HALF_OPEN:
        if (n && heard_since(b, c, n) && !silent && k->why != ZC_BRK_WHY_FAILURES)
            broker__liveness_propose(b, c->id, k->state, ZC_BRK_EV_PROBE_OK, ZC_BRK_WHY_NONE, NULL,
                                     NULL);
        else if (silent && age_ms >= b->cfg.cart_liveness_ms)
            broker__liveness_propose(b, c->id, k->state, ZC_BRK_EV_PROBE_FAIL, ZC_BRK_WHY_HEARTBEAT,
                                     NULL, NULL);
        else if (c->state == ZC_CART_FREE && !silent && n && k->probes < p.max_probes)
            probe_free(b, c, s->now_us); /* nobody else will: see the header */
        else if (k->probes >= p.max_probes && age_ms >= 2 * (uint64_t)b->cfg.cart_timeout_ms)
            /* Every probe was admitted and none came back OK in time (its
             * request may be gone with a previous leader): try again later. */
            broker__liveness_propose(b, c->id, k->state, ZC_BRK_EV_PROBE_FAIL, ZC_BRK_WHY_FAILURES,
                                     NULL, NULL);
        break;
    }
    return 0;
}

void broker__liveness_scan(broker_t *b, uint64_t now_us)
{
    uint64_t gap = b->liveness_prev_us ? now_us - b->liveness_prev_us : 0;
    b->liveness_prev_us = now_us;
    if (gap > (uint64_t)b->cfg.cart_liveness_ms * 500u) {
        /* This process did not run for a while (SIGSTOP, a stalled host):
         * the HELLOs of that time are still queued, unread.  Our own
         * pause is not the nodes' silence: give every node a new window. */
        zc_warn("no liveness scan for %llu ms: node windows restart",
                (unsigned long long)(gap / 1000));
        b->ready_since_us = now_us;
        return;
    }
    if (!broker__ready(b))
        return;
    zc_state_t *st = broker__state(b);
    uint64_t wall = zc_wall_ms();
    /* (a) Breakers that are not CLOSED-and-auto: their timers and probes. */
    scan_t s = {b, now_us, wall, false, false};
    zc_state_each_breaker_not_closed(st, scan_one, &s);
    /* (b) Nodes that came due: silent ones have their carts visited. */
    zc_dq_entry_t *e;
    uint64_t liveness_us = (uint64_t)b->cfg.cart_liveness_ms * 1000u,
             lost_us = (uint64_t)b->cfg.cart_lost_ms * 1000u;
    while ((e = zc_dq_pop_due(&b->node_q, now_us)) != NULL) {
        node_info_t *n = ZC_CONTAINER(e, node_info_t, due);
        uint64_t heard = n->last_hello_us > b->ready_since_us ? n->last_hello_us
                                                              : b->ready_since_us;
        if (now_us - heard <= liveness_us) {
            zc_dq_set(&b->node_q, &n->due, heard + liveness_us + 1); /* heard since */
            continue;
        }
        scan_t w = {b, now_us, wall, false, false};
        zc_state_each_node_cart(st, n->name, scan_one, &w);
        if (w.again)
            zc_dq_set(&b->node_q, &n->due, now_us + LIVENESS_SCAN_MS * 1000u);
        else if (w.assigned && heard + lost_us + 1 > now_us)
            zc_dq_set(&b->node_q, &n->due, heard + lost_us + 1);
        /* else: nothing more until its next HELLO (broker__liveness_heard) */
    }
}

void broker__liveness_heard(broker_t *b, node_info_t *n)
{
    uint64_t heard = n->last_hello_us > b->ready_since_us ? n->last_hello_us : b->ready_since_us;
    zc_dq_set(&b->node_q, &n->due, heard + (uint64_t)b->cfg.cart_liveness_ms * 1000u + 1);
}

/* broker__liveness_start: queue the node of every registered cart. */
static int start_one(const zc_cart_rec_t *c, void *arg)
{
    broker_t *b = arg;
    node_info_t *n = broker__registry_node(b, c->node);
    if (n && !zc_dq_queued(&n->due))
        broker__liveness_heard(b, n);
    return 0;
}

static int start_known(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    broker__liveness_heard(arg, v);
    return 0;
}

void broker__liveness_start(broker_t *b)
{
    zc_dq_clear(&b->node_q);
    if (!broker__ready(b))
        return;
    zc_map_each(b->nodes, start_known, b);
    zc_state_each_cart(broker__state(b), start_one, b);
}

void broker__liveness_op_result(broker_t *b, const char *cart, bool ok, bool probe,
                                uint64_t probe_since_ms)
{
    if (!broker__ready(b))
        return;
    if (probe) {
        /* A result of an earlier HALF_OPEN period (the breaker reopened and
         * half-opened again meanwhile) says nothing about this one: counted,
         * a stale failure would reopen it "for failures", which no HELLO
         * closes. */
        zc_cart_rec_t rec;
        if (zc_state_get_cart(broker__state(b), cart, &rec) != 0 ||
            rec.breaker.state != ZC_BRK_HALF_OPEN || rec.breaker.since_ms != probe_since_ms) {
            zc_info("cart %s: result of a probe of an earlier HALF_OPEN period ignored", cart);
            return;
        }
    }
    brk_info_t *i = info_get(b, cart);
    if (i == NULL)
        return;
    if (probe) {
        i->failures = 0;
        broker__liveness_propose(b, cart, ZC_BRK_HALF_OPEN,
                                 ok ? ZC_BRK_EV_PROBE_OK : ZC_BRK_EV_PROBE_FAIL,
                                 ok ? ZC_BRK_WHY_NONE : ZC_BRK_WHY_FAILURES, NULL, NULL);
        return;
    }
    if (ok) {
        i->failures = 0;
        return;
    }
    if (++i->failures < b->cfg.breaker_failures)
        return;
    i->failures = 0;
    zc_warn("cart %s: %u operations in a row failed or timed out", cart, b->cfg.breaker_failures);
    broker__liveness_propose(b, cart, ZC_BRK_CLOSED, ZC_BRK_EV_TRIP, ZC_BRK_WHY_FAILURES, NULL,
                             NULL);
}

void broker__liveness_forget_cart(broker_t *b, const char *cart)
{
    brk_info_t *i = b->breakers ? zc_map_get(b->breakers, cart, strlen(cart)) : NULL;
    if (i && !i->pending)
        free(zc_map_del(b->breakers, cart, strlen(cart)));
}

void broker__liveness_forget_all(broker_t *b)
{
    zc_dq_clear(&b->node_q);
    zc_map_each(b->breakers, zc_map_free_value, NULL);
    zc_map_destroy(&b->breakers);
    b->breakers = zc_map_new();
}

void broker__liveness_destroy(broker_t *b)
{
    zc_dq_clear(&b->node_q);
    if (b->breakers)
        zc_map_each(b->breakers, zc_map_free_value, NULL);
    zc_map_destroy(&b->breakers);
}
