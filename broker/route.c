/* route: the decision procedure for a client REQUEST (docs/protocol.md §3,
 * steps 3 to 7) and everything a request waits for.
 *
 *   not a ready leader -> park (raft leader, barrier pending) or NOT_LEADER
 *   deadline passed    -> EXPIRED
 *   session ended      -> SESSION_CLOSED / SESSION_EXPIRED (close: OK)
 *   no cart, add       -> propose ASSIGN; on commit forward the add
 *   no cart, other     -> list OK empty, remove NOT_IN_CART, close OK
 *   cart, close        -> propose RELEASE; on commit OK, then drain the cart
 *   cart, other        -> CART_REQUEST with (session, generation); a node
 *                         not connected yet is waited for (its HELLO), up
 *                         to --cart-timeout, then CART_UNAVAILABLE
 *
 * Proposal callbacks find their request again by corr, never by pointer: a
 * request that timed out is gone, and a late commit must not touch it. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/lease.h"
#include "broker/liveness.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* Argument of a proposal callback. */
typedef struct {
    broker_t *b;   /* the broker */
    uint64_t corr; /* the request that proposed */
} propose_ctx_t;

static void short_session(const uint8_t s[ZC_SESSION_LEN], char out[9])
{
    char hex[2 * ZC_SESSION_LEN + 1];
    zc_session_hex(s, hex);
    memcpy(out, hex, 8);
    out[8] = 0;
}

static breq_t *breq_new(broker_t *b, const uint8_t *client, size_t client_len, const zc_msg_t *req)
{
    breq_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->corr = ++b->next_corr;
    memcpy(q->client, client, client_len);
    q->client_len = (uint8_t)client_len;
    q->req = *req; /* a REQUEST has no lists to own */
    zc_link_init(&q->link);
    if (zc_map_put_u64(b->inflight, q->corr, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

static void breq_free(broker_t *b, breq_t *q)
{
    if (q->state == BREQ_AT_NODE)
        b->n_at_node--;
    zc_map_del_u64(b->inflight, q->corr);
    zc_link_remove(&q->link);
    free(q);
}

/* Start (or restart) a wait: every wait lasts cart_timeout_ms, so appending
 * keeps `waiting` sorted by expiry. */
static void breq_wait(broker_t *b, breq_t *q, breq_state_t state)
{
    b->n_at_node += (state == BREQ_AT_NODE) - (q->state == BREQ_AT_NODE);
    q->state = state;
    q->expires_us = zc_mono_us() + (uint64_t)b->cfg.cart_timeout_ms * 1000u;
    zc_link_remove(&q->link);
    zc_list_push_back(&b->waiting, &q->link);
}

/* Answer and forget. */
static void finish(broker_t *b, breq_t *q, int status, const char *detail, const zc_msg_t *cart_reply)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_REPLY);
    memcpy(r.session, q->req.session, ZC_SESSION_LEN);
    r.seq = q->req.seq;
    r.status = (uint8_t)status;
    snprintf(r.cart, sizeof r.cart, "%s", q->cart);
    r.generation = q->generation;
    snprintf(r.detail, sizeof r.detail, "%s", detail ? detail : "");
    if (cart_reply) {
        /* Borrow the cart's item list for the encode. */
        r.items = cart_reply->items;
        r.n_items = cart_reply->n_items;
    }
    frontend_send(b, q->client, q->client_len, &r);
    breq_free(b, q);
}

static void finish_not_leader(broker_t *b, breq_t *q)
{
    frontend_reply_not_leader(b, q->client, q->client_len, &q->req);
    breq_free(b, q);
}

static void send_to_cart(broker_t *b, breq_t *q);
static void probe_done(void *arg, int status, const zc_cmd_result_t *res);

/* The cart's breaker decides first (liveness.c): OPEN fails fast, HALF_OPEN
 * lets the request through as a probe once its PROBE committed (probes are
 * counted in the replicated record), CLOSED sends. */
static void forward(broker_t *b, breq_t *q)
{
    zc_cart_rec_t rec;
    int rc = zc_state_get_cart(zc_node_state(b->node), q->cart, &rec);
    if (rc < 0) {
        finish(b, q, ZC_INTERNAL, "state read failed", NULL);
        return;
    }
    if (rc == 0 && !q->probe && rec.breaker.state != ZC_BRK_CLOSED) {
        zc_brk_policy_t p = liveness_policy(b);
        if (!zc_breaker_passes(&rec.breaker, &p)) {
            char detail[96];
            snprintf(detail, sizeof detail, "the cart's breaker is %s (%s)",
                     zc_breaker_state_name(rec.breaker.state), zc_breaker_why_name(rec.breaker.why));
            finish(b, q, ZC_CART_UNAVAILABLE, detail, NULL);
            return;
        }
        propose_ctx_t *ctx = malloc(sizeof *ctx);
        if (ctx == NULL) {
            finish(b, q, ZC_INTERNAL, "out of memory", NULL);
            return;
        }
        ctx->b = b;
        ctx->corr = q->corr;
        breq_wait(b, q, BREQ_PROBING);
        liveness_propose(b, q->cart, rec.breaker.state, ZC_BRK_EV_PROBE, ZC_BRK_WHY_NONE,
                         probe_done, ctx);
        return;
    }
    send_to_cart(b, q);
}

static void send_to_cart(broker_t *b, breq_t *q)
{
    char node[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (!broker_split_cart(q->cart, node, &slot)) {
        finish(b, q, ZC_INTERNAL, "malformed cart id in the replicated state", NULL);
        return;
    }
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_CART_REQUEST);
    m.corr = q->corr;
    m.slot = slot;
    memcpy(m.session, q->req.session, ZC_SESSION_LEN);
    m.generation = q->generation;
    m.seq = q->req.seq;
    m.op = q->req.op;
    m.deadline = q->req.deadline;
    memcpy(m.product, q->req.product, sizeof m.product);
    m.qty = q->req.qty;
    if (backend_send(b, node, &m) != 0) {
        /* Not connected (yet): its HELLO forwards the request, the tick
         * answers CART_UNAVAILABLE once the wait runs out. */
        if (q->state != BREQ_AT_NODE)
            breq_wait(b, q, BREQ_AT_NODE);
        return;
    }
    breq_wait(b, q, BREQ_AT_CART);
}

static breq_t *ctx_take(void *arg, broker_t **bp, breq_state_t want)
{
    propose_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    breq_t *q = zc_map_get_u64(b->inflight, ctx->corr);
    free(ctx);
    *bp = b;
    return q && q->state == want ? q : NULL;
}

/* A proposal that did not apply here: the client retries, and since every
 * command is idempotent a retry is safe whether or not it committed. */
static void proposal_failed(broker_t *b, breq_t *q, int status)
{
    if (status == ZC_INTERNAL)
        finish(b, q, ZC_INTERNAL, "could not propose the command", NULL);
    else
        finish_not_leader(b, q);
}

static void assign_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_ASSIGNING);
    if (q == NULL)
        return;
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return;
    }
    if (res->status != ZC_OK) {
        finish(b, q, res->status,
               res->status == ZC_NO_FREE_CART ? "every cart is taken or unavailable" : NULL, NULL);
        return;
    }
    snprintf(q->cart, sizeof q->cart, "%s", res->cart);
    q->generation = res->generation;
    lease_touch(b, q->req.session);
    char s[9];
    short_session(q->req.session, s);
    zc_info("session %s assigned cart %s gen %llu", s, q->cart, (unsigned long long)q->generation);
    forward(b, q);
}

/* The PROBE of a HALF_OPEN breaker committed (or not): send the request as
 * the probe, or refuse it when the table had no probe left. */
static void probe_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_PROBING);
    if (q == NULL)
        return; /* gone: liveness_scan fails the probe once its time is up */
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return;
    }
    if (res->status != ZC_OK) {
        char detail[96];
        snprintf(detail, sizeof detail, "the cart's breaker is %s and admits no more probes",
                 zc_breaker_state_name(res->breaker.state));
        finish(b, q, ZC_CART_UNAVAILABLE, detail, NULL);
        return;
    }
    q->probe = true;
    send_to_cart(b, q);
}

/* LOST_TOLD committed: this request is the session's CART_LOST answer. */
static void told_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_TELLING);
    if (q == NULL)
        return;
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return;
    }
    snprintf(q->cart, sizeof q->cart, "%s", res->cart);
    q->generation = res->generation;
    char s[9], detail[ZC_CART_MAX + 128];
    short_session(q->req.session, s);
    snprintf(detail, sizeof detail,
             "the session's cart was lost with its items; it continues on the empty cart %s "
             "(this request was not applied)", res->cart);
    zc_info("session %s told CART_LOST, now on cart %s gen %llu", s, res->cart,
            (unsigned long long)res->generation);
    finish(b, q, ZC_CART_LOST, detail, NULL);
}

static void release_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_RELEASING);
    if (q == NULL) {
        /* The client gave up, but the cart still needs draining. */
        if (status == ZC_OK && res->cart[0])
            drain_cart(b, res->cart, res->generation);
        return;
    }
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return;
    }
    snprintf(q->cart, sizeof q->cart, "%s", res->cart);
    q->generation = res->generation;
    lease_forget(b, q->req.session);
    if (res->cart[0]) {
        char s[9];
        short_session(q->req.session, s);
        zc_info("session %s closed, cart %s gen %llu draining", s, q->cart,
                (unsigned long long)q->generation);
        drain_cart(b, res->cart, res->generation);
    }
    finish(b, q, ZC_OK, NULL, NULL);
}

static void propose(broker_t *b, breq_t *q, const zc_cmd_t *cmd, breq_state_t state,
                    zc_propose_cb cb)
{
    propose_ctx_t *ctx = malloc(sizeof *ctx);
    if (ctx == NULL) {
        finish(b, q, ZC_INTERNAL, "out of memory", NULL);
        return;
    }
    ctx->b = b;
    ctx->corr = q->corr;
    breq_wait(b, q, state);
    /* May call back before returning: q must not be used after this. */
    zc_node_propose(b->node, cmd, cb, ctx);
}

/* Steps 4 to 7 for a ready leader. */
static void dispatch(broker_t *b, breq_t *q)
{
    const zc_msg_t *req = &q->req;
    if (req->deadline && zc_wall_ms() > req->deadline) {
        finish(b, q, ZC_EXPIRED, "picked up after its deadline", NULL);
        return;
    }
    zc_session_rec_t s;
    int rc = zc_state_get_session(zc_node_state(b->node), req->session, &s);
    if (rc < 0) {
        finish(b, q, ZC_INTERNAL, "state read failed", NULL);
        return;
    }
    if (rc == 0) {
        snprintf(q->cart, sizeof q->cart, "%s", s.cart);
        q->generation = s.generation;
        if (s.state != ZC_SESS_LIVE) {
            if (req->op == ZC_OP_CLOSE)
                finish(b, q, ZC_OK, NULL, NULL);
            else if (s.state == ZC_SESS_CLOSED)
                finish(b, q, ZC_SESSION_CLOSED, "the session was closed", NULL);
            else
                finish(b, q, ZC_SESSION_EXPIRED, "the session's lease expired", NULL);
            return;
        }
        lease_touch(b, req->session);
        if (s.lost && req->op != ZC_OP_CLOSE) {
            /* Told once, through the log: after this commit the mark is gone. */
            zc_cmd_t c = {.type = ZC_CMD_LOST_TOLD, .time_ms = zc_wall_ms()};
            memcpy(c.told.session, req->session, ZC_SESSION_LEN);
            propose(b, q, &c, BREQ_TELLING, told_done);
            return;
        }
        if (req->op == ZC_OP_KEEPALIVE) {
            finish(b, q, ZC_OK, NULL, NULL); /* the lease is renewed: nothing else to do */
            return;
        }
        if (req->op == ZC_OP_CLOSE) {
            zc_cmd_t c = {.type = ZC_CMD_RELEASE, .time_ms = zc_wall_ms()};
            memcpy(c.release.session, req->session, ZC_SESSION_LEN);
            c.release.why = ZC_RELEASE_CLOSE;
            propose(b, q, &c, BREQ_RELEASING, release_done);
            return;
        }
        forward(b, q);
        return;
    }
    switch (req->op) {
    case ZC_OP_ADD: {
        zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = zc_wall_ms()};
        memcpy(c.assign.session, req->session, ZC_SESSION_LEN);
        propose(b, q, &c, BREQ_ASSIGNING, assign_done);
        return;
    }
    case ZC_OP_REMOVE:
        finish(b, q, ZC_NOT_IN_CART, "the session has no cart", NULL);
        return;
    default: /* list: empty; close: nothing to release; keepalive: no lease to renew */
        finish(b, q, ZC_OK, NULL, NULL);
        return;
    }
}

void route_request(broker_t *b, const uint8_t *client, size_t client_len, const zc_msg_t *req)
{
    zc_node_info_t info;
    if (b->stopping) {
        frontend_reply_ko(b, client, client_len, req, ZC_UNAVAILABLE, "replica shutting down");
        return;
    }
    zc_node_info(b->node, &info);
    if (info.role != ZC_ROLE_LEADER) {
        frontend_reply_not_leader(b, client, client_len, req);
        return;
    }
    breq_t *q = breq_new(b, client, client_len, req);
    if (q == NULL) {
        frontend_reply_ko(b, client, client_len, req, ZC_INTERNAL, "out of memory");
        return;
    }
    if (!info.ready) {
        breq_wait(b, q, BREQ_PARKED); /* until the leader's barrier applies */
        return;
    }
    dispatch(b, q);
}

/* The statuses a cart may decide (docs/protocol.md section 4).  Anything
 * else -- NOT_LEADER above all, whose detail would move the client and its
 * session id to an endpoint the cart picked -- is the cart misbehaving. */
static bool cart_may_say(int status)
{
    switch (status) {
    case ZC_OK:
    case ZC_BAD_REQUEST:
    case ZC_OUT_OF_STOCK:
    case ZC_UNKNOWN_PRODUCT:
    case ZC_STOCK_TIMEOUT:
    case ZC_STOCK_UNAVAILABLE:
    case ZC_NOT_IN_CART:
    case ZC_FENCED:
    case ZC_EXPIRED:
    case ZC_INTERNAL:
        return true;
    default:
        return false;
    }
}

void route_cart_reply(broker_t *b, const char *node, const zc_msg_t *m)
{
    breq_t *q = zc_map_get_u64(b->inflight, m->corr);
    char qnode[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (q == NULL || q->state != BREQ_AT_CART) {
        zc_debug("late or unknown cart reply corr %llu from %s", (unsigned long long)m->corr, node);
        return;
    }
    if (!broker_split_cart(q->cart, qnode, &slot) || strcmp(qnode, node) != 0 || slot != m->slot ||
        memcmp(m->session, q->req.session, ZC_SESSION_LEN) != 0 || m->seq != q->req.seq) {
        b->dropped++;
        zc_warn("cart reply corr %llu from %s does not match its request, dropped",
                (unsigned long long)m->corr, node);
        return;
    }
    if (!cart_may_say(m->status)) {
        /* Never forwarded: the client gets INTERNAL, and it counts against
         * the cart's breaker like any failure of the cart. */
        b->dropped++;
        zc_warn("cart %s answered status %d (%s), which a cart must not: INTERNAL to the client",
                q->cart, m->status, zc_status_name(m->status));
        liveness_op_result(b, q->cart, false, q->probe);
        finish(b, q, ZC_INTERNAL, "the cart answered a status a cart must not", NULL);
        return;
    }
    if (m->status == ZC_FENCED) {
        char d[4 * ZC_DETAIL_MAX + 1];
        zc_warn("cart %s refused gen %llu: %s", q->cart, (unsigned long long)q->generation,
                zc_escape(m->detail, sizeof m->detail, d, sizeof d));
    }
    /* A KO the cart decided is the cart working; INTERNAL is the cart failing. */
    liveness_op_result(b, q->cart, m->status != ZC_INTERNAL, q->probe);
    finish(b, q, m->status, m->detail, m);
}

void route_expire(broker_t *b, uint64_t now_us)
{
    while (!zc_list_empty(&b->waiting)) {
        breq_t *q = ZC_CONTAINER(b->waiting.next, breq_t, link);
        if (q->expires_us > now_us)
            return;
        switch (q->state) {
        case BREQ_AT_CART:
            zc_warn("cart %s did not answer seq %llu within %u ms", q->cart,
                    (unsigned long long)q->req.seq, b->cfg.cart_timeout_ms);
            liveness_op_result(b, q->cart, false, q->probe);
            finish(b, q, ZC_CART_UNAVAILABLE, "the cart did not answer in time", NULL);
            break;
        case BREQ_AT_NODE:
            zc_warn("cart %s: its node did not connect within %u ms (seq %llu)", q->cart,
                    b->cfg.cart_timeout_ms, (unsigned long long)q->req.seq);
            if (q->probe)
                liveness_op_result(b, q->cart, false, true);
            finish(b, q, ZC_CART_UNAVAILABLE, "the cart's node is not connected", NULL);
            break;
        case BREQ_PARKED:
            finish(b, q, ZC_UNAVAILABLE, "the new leader is still catching up", NULL);
            break;
        default:
            finish(b, q, ZC_UNAVAILABLE, "the command did not commit in time", NULL);
            break;
        }
    }
}

void route_node_connected(broker_t *b, const char *node)
{
    if (b->n_at_node == 0)
        return;
    /* Collect first: forwarding re-links (or finishes) each request. */
    zc_link_t ready;
    zc_link_init(&ready);
    zc_link_t *l = b->waiting.next;
    while (l != &b->waiting) {
        zc_link_t *next = l->next;
        breq_t *q = ZC_CONTAINER(l, breq_t, link);
        char qnode[ZC_NODE_MAX + 1];
        uint16_t slot;
        if (q->state == BREQ_AT_NODE && broker_split_cart(q->cart, qnode, &slot) &&
            (node == NULL || strcmp(qnode, node) == 0)) {
            zc_link_remove(&q->link);
            zc_list_push_back(&ready, &q->link);
        }
        l = next;
    }
    while (!zc_list_empty(&ready)) {
        breq_t *q = ZC_CONTAINER(ready.next, breq_t, link);
        uint64_t corr = q->corr;
        zc_link_remove(&q->link);
        forward(b, q); /* may answer and free q */
        breq_t *still = zc_map_get_u64(b->inflight, corr);
        if (still && still->state == BREQ_AT_NODE && zc_list_empty(&still->link))
            zc_list_push_back(&b->waiting, &still->link); /* not reachable yet */
    }
}

void route_role_changed(broker_t *b)
{
    zc_node_info_t info;
    zc_node_info(b->node, &info);
    /* Collect the parked requests first: dispatching re-links them. */
    zc_link_t parked;
    zc_link_init(&parked);
    zc_link_t *l = b->waiting.next;
    while (l != &b->waiting) {
        zc_link_t *next = l->next;
        breq_t *q = ZC_CONTAINER(l, breq_t, link);
        bool deposed = info.role != ZC_ROLE_LEADER;
        if ((q->state == BREQ_PARKED && (info.ready || deposed)) ||
            (q->state == BREQ_AT_NODE && deposed)) {
            zc_link_remove(&q->link);
            zc_list_push_back(&parked, &q->link);
        }
        l = next;
    }
    while (!zc_list_empty(&parked)) {
        breq_t *q = ZC_CONTAINER(parked.next, breq_t, link);
        zc_link_remove(&q->link);
        if (info.ready)
            dispatch(b, q);
        else
            finish_not_leader(b, q);
    }
}

void route_abort_all(broker_t *b)
{
    while (!zc_list_empty(&b->waiting)) {
        breq_t *q = ZC_CONTAINER(b->waiting.next, breq_t, link);
        finish(b, q, ZC_UNAVAILABLE, "replica shutting down", NULL);
    }
}
