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

#include "broker/internal.h"
#include "broker/lease.h"
#include "broker/liveness.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

#define STORAGE_FULL_DETAIL                                                                        \
    "the replicated state is at its storage limit (--state-map-size): no new session until "     \
    "ended ones are purged (--session-retention)"

/* Argument of a proposal callback. */
typedef struct {
    broker_t *b;                     /* the broker */
    uint64_t corr;                   /* the request that proposed */
    uint8_t session[ZC_SESSION_LEN]; /* its session: a late commit still
                                        keeps the session's lease right */
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
    q->started_us = zc_mono_us();
    zc_link_init(&q->link);
    if (zc_map_put_u64(b->inflight, q->corr, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* States in which a breq waits for its own proposal (--max-proposals). */
static bool proposing(breq_state_t s)
{
    return s == BREQ_ASSIGNING || s == BREQ_RELEASING || s == BREQ_PROBING || s == BREQ_TELLING;
}

static void breq_free(broker_t *b, breq_t *q)
{
    if (q->state == BREQ_AT_NODE)
        b->n_at_node--;
    if (proposing(q->state))
        b->n_proposing--;
    zc_map_del_u64(b->inflight, q->corr);
    zc_link_remove(&q->link);
    free(q);
}

#define TO(s) (1u << (s))
/* breq_next[state]: the states a request may move to from it (broker.h has
 * the diagram).  Ending (answer and free) is always allowed, not listed. */
static const uint16_t breq_next[BREQ_N_STATES] = {
    [BREQ_NEW] = TO(BREQ_PARKED) | TO(BREQ_ASSIGNING) | TO(BREQ_RELEASING) | TO(BREQ_TELLING) |
                 TO(BREQ_PROBING) | TO(BREQ_AT_NODE) | TO(BREQ_AT_CART),
    [BREQ_PARKED] = TO(BREQ_ASSIGNING) | TO(BREQ_RELEASING) | TO(BREQ_TELLING) | TO(BREQ_PROBING) |
                    TO(BREQ_AT_NODE) | TO(BREQ_AT_CART),
    [BREQ_ASSIGNING] = TO(BREQ_PROBING) | TO(BREQ_AT_NODE) | TO(BREQ_AT_CART),
    [BREQ_PROBING] = TO(BREQ_AT_NODE) | TO(BREQ_AT_CART),
    [BREQ_AT_NODE] = TO(BREQ_PROBING) | TO(BREQ_AT_CART),
    [BREQ_AT_CART] = 0,
    [BREQ_RELEASING] = 0,
    [BREQ_TELLING] = 0,
};
#undef TO

bool broker__route_breq_may(breq_state_t from, breq_state_t to)
{
    return from < BREQ_N_STATES && to < BREQ_N_STATES && (breq_next[from] >> to) & 1u;
}

const char *broker__route_breq_state_name(breq_state_t s)
{
    static const char *const names[BREQ_N_STATES] = {
        [BREQ_NEW] = "NEW",         [BREQ_PARKED] = "PARKED",       [BREQ_ASSIGNING] = "ASSIGNING",
        [BREQ_AT_CART] = "AT_CART", [BREQ_RELEASING] = "RELEASING", [BREQ_AT_NODE] = "AT_NODE",
        [BREQ_PROBING] = "PROBING", [BREQ_TELLING] = "TELLING",
    };
    return s < BREQ_N_STATES ? names[s] : "?";
}

static void finish(broker_t *b, breq_t *q, int status, const char *detail,
                   const zc_msg_t *cart_reply);

/* Start (or restart) a wait in `state`: every wait lasts cart_timeout_ms,
 * so appending keeps `waiting` sorted by expiry.  False (and q answered
 * INTERNAL, freed) when the lifecycle has no such move. */
static bool breq_wait(broker_t *b, breq_t *q, breq_state_t state)
{
    if (!broker__route_breq_may(q->state, state)) {
        zc_error("request corr %llu: %s -> %s is not in the request lifecycle (a bug)",
                 (unsigned long long)q->corr, broker__route_breq_state_name(q->state),
                 broker__route_breq_state_name(state));
        finish(b, q, ZC_INTERNAL, "internal error: bad request state transition", NULL);
        return false;
    }
    b->n_at_node += (state == BREQ_AT_NODE) - (q->state == BREQ_AT_NODE);
    b->n_proposing += proposing(state) - proposing(q->state);
    q->state = state;
    q->expires_us = zc_mono_us() + (uint64_t)b->cfg.cart_timeout_ms * 1000u;
    zc_link_remove(&q->link);
    zc_list_push_back(&b->waiting, &q->link);
    return true;
}

/* Put q back into `waiting` at the place its (unchanged) expiry gives it:
 * appended at the tail, an older wait would sit behind later ones and
 * expire only after them. */
static void waiting_insert(broker_t *b, breq_t *q)
{
    zc_link_t *pos = &b->waiting; /* insert before pos */
    while (pos->prev != &b->waiting &&
           ZC_CONTAINER(pos->prev, breq_t, link)->expires_us > q->expires_us)
        pos = pos->prev;
    zc_list_push_back(pos, &q->link);
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
    r.term = q->term;
    snprintf(r.detail, sizeof r.detail, "%s", detail ? detail : "");
    if (cart_reply) {
        /* Borrow the cart's item list for the encode. */
        r.items = cart_reply->items;
        r.n_items = cart_reply->n_items;
    }
    broker__frontend_send(b, q->client, q->client_len, &r);
    broker__metrics_request(b, q->req.op, status, q->started_us);
    breq_free(b, q);
}

static void finish_not_leader(broker_t *b, breq_t *q)
{
    broker__frontend_reply_not_leader(b, q->client, q->client_len, &q->req);
    breq_free(b, q);
}

/* q starts waiting in `state` for a proposal to commit: the callback's
 * context.  NULL (q answered and freed) when that cannot be. */
static propose_ctx_t *wait_for_commit(broker_t *b, breq_t *q, breq_state_t state)
{
    propose_ctx_t *ctx = malloc(sizeof *ctx);
    if (ctx == NULL) {
        finish(b, q, ZC_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    ctx->b = b;
    ctx->corr = q->corr;
    memcpy(ctx->session, q->req.session, ZC_SESSION_LEN);
    if (!breq_wait(b, q, state)) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void send_to_cart(broker_t *b, breq_t *q);
static void probe_done(void *arg, int status, const zc_cmd_result_t *res);

/* The request a proposal callback belongs to, if it still waits in state
 * `want` (NULL when it timed out meanwhile); its session into session
 * (when not NULL) either way.  Frees the context. */
static breq_t *ctx_take_session(void *arg, broker_t **bp, breq_state_t want,
                                uint8_t session[ZC_SESSION_LEN])
{
    propose_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    breq_t *q = zc_map_get_u64(b->inflight, ctx->corr);
    if (session)
        memcpy(session, ctx->session, ZC_SESSION_LEN);
    free(ctx);
    *bp = b;
    return q && q->state == want ? q : NULL;
}

/* The cart's breaker decides first (liveness.c): OPEN fails fast, HALF_OPEN
 * lets the request through as a probe once its PROBE committed (probes are
 * counted in the replicated record), CLOSED sends. */
static void forward(broker_t *b, breq_t *q)
{
    zc_cart_rec_t rec;
    int rc = zc_state_get_cart(broker__state(b), q->cart, &rec);
    if (rc < 0) {
        finish(b, q, ZC_INTERNAL, "state read failed", NULL);
        return;
    }
    if (rc == 0 && !q->probe && rec.breaker.state != ZC_BRK_CLOSED) {
        zc_brk_policy_t p = broker__liveness_policy(b);
        if (!zc_breaker_passes(&rec.breaker, &p)) {
            char detail[96];
            snprintf(detail, sizeof detail, "the cart's breaker is %s (%s)",
                     zc_breaker_state_name(rec.breaker.state), zc_breaker_why_name(rec.breaker.why));
            finish(b, q, ZC_CART_UNAVAILABLE, detail, NULL);
            return;
        }
        propose_ctx_t *ctx = wait_for_commit(b, q, BREQ_PROBING);
        if (ctx == NULL)
            return;
        broker__liveness_propose(b, q->cart, rec.breaker.state, ZC_BRK_EV_PROBE, ZC_BRK_WHY_NONE,
                                 probe_done, ctx);
        return;
    }
    send_to_cart(b, q);
}

static void send_to_cart(broker_t *b, breq_t *q)
{
    char node[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (!broker__split_cart(q->cart, node, &slot)) {
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
    if (broker__backend_send(b, node, &m) != 0) {
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
    return ctx_take_session(arg, bp, want, NULL);
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
    uint8_t session[ZC_SESSION_LEN];
    breq_t *q = ctx_take_session(arg, &b, BREQ_ASSIGNING, session);
    if (q == NULL) {
        /* The client gave up, but the session now holds a cart: its lease
         * starts now (without an entry it would count from when this
         * replica became leader, and could expire at once). */
        if (status == ZC_OK && res->status == ZC_OK && !res->replayed)
            broker__lease_touch(b, session);
        return;
    }
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return;
    }
    if (res->status != ZC_OK) {
        finish(b, q, res->status,
               res->status == ZC_NO_FREE_CART  ? "every cart is taken or unavailable"
               : res->status == ZC_STORAGE_FULL ? STORAGE_FULL_DETAIL
                                                : NULL,
               NULL);
        return;
    }
    snprintf(q->cart, sizeof q->cart, "%s", res->cart);
    q->generation = res->generation;
    broker__lease_touch(b, q->req.session);
    char s[9];
    short_session(q->req.session, s);
    zc_debug("session %s assigned cart %s gen %llu", s, q->cart, (unsigned long long)q->generation);
    forward(b, q);
}

/* The PROBE of a HALF_OPEN breaker committed (or not): send the request as
 * the probe, or refuse it when the table had no probe left. */
static void probe_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_PROBING);
    if (q == NULL)
        return; /* gone: broker__liveness_scan fails the probe once its time is up */
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
    q->probe_since_ms = res->breaker.since_ms;
    send_to_cart(b, q);
}

/* A RELEASE or LOST_TOLD of q's session committed (true: the session's
 * cart and generation into q), or it did not (false: q answered). */
static bool committed(broker_t *b, breq_t *q, int status, const zc_cmd_result_t *res)
{
    if (status != ZC_OK) {
        proposal_failed(b, q, status);
        return false;
    }
    snprintf(q->cart, sizeof q->cart, "%s", res->cart);
    q->generation = res->generation;
    return true;
}

/* LOST_TOLD committed: this request is the session's CART_LOST answer. */
static void told_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b;
    breq_t *q = ctx_take(arg, &b, BREQ_TELLING);
    if (q == NULL || !committed(b, q, status, res))
        return;
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
    uint8_t session[ZC_SESSION_LEN];
    breq_t *q = ctx_take_session(arg, &b, BREQ_RELEASING, session);
    if (q == NULL) {
        /* The client gave up, but the cart still needs draining and the
         * ended session no lease. */
        if (status == ZC_OK) {
            broker__lease_forget(b, session);
            if (res->cart[0])
                broker__drain_cart(b, res->cart, res->generation);
        }
        return;
    }
    if (!committed(b, q, status, res))
        return;
    broker__lease_forget(b, q->req.session);
    if (res->cart[0]) {
        char s[9];
        short_session(q->req.session, s);
        zc_debug("session %s closed, cart %s gen %llu draining", s, q->cart,
                (unsigned long long)q->generation);
        broker__drain_cart(b, res->cart, res->generation);
    }
    finish(b, q, ZC_OK, NULL, NULL);
}

/* Admission control: BUSY, never applied, with a retry hint -- the time
 * the oldest wait still has to run, when the leader will have room again
 * at the latest (at least 10 ms). */
static void busy(broker_t *b, breq_t *q, const char *what, unsigned n, unsigned limit)
{
    uint64_t hint_ms = 10, now = zc_mono_us();
    if (!zc_list_empty(&b->waiting)) {
        breq_t *old = ZC_CONTAINER(b->waiting.next, breq_t, link);
        if (old->expires_us > now && (old->expires_us - now) / 1000 > hint_ms)
            hint_ms = (old->expires_us - now) / 1000;
    }
    char detail[160];
    snprintf(detail, sizeof detail, "the leader is busy: %u %s (limit %u); retry after %llu ms",
             n, what, limit, (unsigned long long)hint_ms);
    b->busy++;
    finish(b, q, ZC_BUSY, detail, NULL);
}

static void propose(broker_t *b, breq_t *q, const zc_cmd_t *cmd, breq_state_t state,
                    zc_propose_cb cb)
{
    if (!proposing(q->state) && b->n_proposing >= b->cfg.max_proposals) {
        busy(b, q, "requests waiting for a commit", b->n_proposing, b->cfg.max_proposals);
        return;
    }
    propose_ctx_t *ctx = wait_for_commit(b, q, state);
    if (ctx == NULL)
        return;
    /* May call back before returning: q must not be used after this. */
    broker__propose(b, cmd, cb, ctx);
}

/* Step 5: the session has ended (its last cart and generation are in q). */
static void answer_ended(broker_t *b, breq_t *q, const zc_session_rec_t *s)
{
#ifdef ZCART_MUTANT_CLOSED_SESSION_RENEWED /* chaos mutant: an ended session's keepalive is OK */
    if (q->req.op == ZC_OP_CLOSE || q->req.op == ZC_OP_KEEPALIVE)
#else
    if (q->req.op == ZC_OP_CLOSE)
#endif
        finish(b, q, ZC_OK, NULL, NULL);
    else if (s->state == ZC_SESS_CLOSED)
        finish(b, q, ZC_SESSION_CLOSED, "the session was closed", NULL);
    else
        finish(b, q, ZC_SESSION_EXPIRED, "the session's lease expired", NULL);
}

/* Steps 7 and 8: a live session with a cart. */
static void dispatch_live(broker_t *b, breq_t *q, const zc_session_rec_t *s)
{
    const zc_msg_t *req = &q->req;
    broker__lease_touch(b, req->session);
    if (s->lost && req->op != ZC_OP_CLOSE) {
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
}

/* Step 6: a session with no cart. */
static void dispatch_unknown(broker_t *b, breq_t *q)
{
    switch (q->req.op) {
    case ZC_OP_ADD: {
        /* The storage limit (replication/state.h): refused here at once when
         * the state already holds the limit, and by apply on every replica
         * when this ASSIGN would pass it. */
        uint32_t limit = zc_state_max_records((size_t)b->cfg.state_map_size);
        if (zc_state_records(broker__state(b)) >= limit) {
            finish(b, q, ZC_STORAGE_FULL, STORAGE_FULL_DETAIL, NULL);
            return;
        }
        /* No proposal that can only say NO_FREE_CART. */
        if (zc_state_free_count(broker__state(b)) == 0) {
            finish(b, q, ZC_NO_FREE_CART, "every cart is taken or unavailable", NULL);
            return;
        }
        zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = zc_wall_ms()};
        memcpy(c.assign.session, q->req.session, ZC_SESSION_LEN);
        c.assign.max_records = limit;
        c.assign.placement = b->cfg.placement;
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

/* Steps 4 to 8 for a ready leader. */
static void dispatch(broker_t *b, breq_t *q)
{
    zc_node_info_t ni;
    broker__info(b, &ni);
    q->term = ni.ready ? ni.term : 0; /* what the REPLY says about who decided it */
    if (q->req.deadline && zc_wall_ms() > q->req.deadline) {
        finish(b, q, ZC_EXPIRED, "picked up after its deadline", NULL);
        return;
    }
    zc_session_rec_t s;
    int rc = zc_state_get_session(broker__state(b), q->req.session, &s);
    if (rc < 0) {
        finish(b, q, ZC_INTERNAL, "state read failed", NULL);
        return;
    }
    if (rc == 1) {
        dispatch_unknown(b, q);
        return;
    }
    snprintf(q->cart, sizeof q->cart, "%s", s.cart);
    q->generation = s.generation;
    if (s.state != ZC_SESS_LIVE)
        answer_ended(b, q, &s);
    else
        dispatch_live(b, q, &s);
}

void broker__route_request(broker_t *b, const uint8_t *client, size_t client_len,
                           const zc_msg_t *req)
{
    zc_node_info_t info;
    if (b->stopping) {
        broker__frontend_reply_ko(b, client, client_len, req, ZC_UNAVAILABLE,
                                  "replica shutting down");
        return;
    }
    broker__info(b, &info);
#ifdef ZCART_MUTANT_FOLLOWER_SERVES /* chaos mutant: every replica serves as if it led */
    info.role = ZC_ROLE_LEADER;
    info.ready = true;
#endif
    if (info.role != ZC_ROLE_LEADER) {
        broker__frontend_reply_not_leader(b, client, client_len, req);
        return;
    }
    if (zc_map_size(b->inflight) >= b->cfg.max_waiting) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "the leader is busy: %zu requests waiting (limit %u); retry after %u ms",
                 zc_map_size(b->inflight), b->cfg.max_waiting, b->cfg.cart_timeout_ms / 4);
        b->busy++;
        broker__frontend_reply_ko(b, client, client_len, req, ZC_BUSY, detail);
        return;
    }
    breq_t *q = breq_new(b, client, client_len, req);
    if (q == NULL) {
        broker__frontend_reply_ko(b, client, client_len, req, ZC_INTERNAL, "out of memory");
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
    case ZC_STORAGE_FULL:
        return true;
    default:
        return false;
    }
}

void broker__route_cart_reply(broker_t *b, const char *node, const zc_msg_t *m)
{
    breq_t *q = zc_map_get_u64(b->inflight, m->corr);
    char qnode[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (q == NULL || q->state != BREQ_AT_CART) {
        zc_debug("late or unknown cart reply corr %llu from %s", (unsigned long long)m->corr, node);
        return;
    }
    if (!broker__split_cart(q->cart, qnode, &slot) || strcmp(qnode, node) != 0 || slot != m->slot ||
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
        broker__liveness_op_result(b, q->cart, false, q->probe, q->probe_since_ms);
        finish(b, q, ZC_INTERNAL, "the cart answered a status a cart must not", NULL);
        return;
    }
    if (m->status == ZC_FENCED) {
        char d[4 * ZC_DETAIL_MAX + 1];
        zc_warn("cart %s refused gen %llu: %s", q->cart, (unsigned long long)q->generation,
                zc_escape(m->detail, sizeof m->detail, d, sizeof d));
    }
    /* A KO the cart decided is the cart working; INTERNAL is the cart failing. */
    broker__liveness_op_result(b, q->cart, m->status != ZC_INTERNAL, q->probe, q->probe_since_ms);
    finish(b, q, m->status, m->detail, m);
}

void broker__route_expire(broker_t *b, uint64_t now_us)
{
    while (!zc_list_empty(&b->waiting)) {
        breq_t *q = ZC_CONTAINER(b->waiting.next, breq_t, link);
        if (q->expires_us > now_us)
            return;
        switch (q->state) {
        case BREQ_AT_CART:
            zc_warn("cart %s did not answer seq %llu within %u ms", q->cart,
                    (unsigned long long)q->req.seq, b->cfg.cart_timeout_ms);
            broker__liveness_op_result(b, q->cart, false, q->probe, q->probe_since_ms);
            finish(b, q, ZC_CART_UNAVAILABLE, "the cart did not answer in time", NULL);
            break;
        case BREQ_AT_NODE:
            zc_warn("cart %s: its node did not connect within %u ms (seq %llu)", q->cart,
                    b->cfg.cart_timeout_ms, (unsigned long long)q->req.seq);
            if (q->probe)
                broker__liveness_op_result(b, q->cart, false, true, q->probe_since_ms);
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

/* Move the waiting requests `pick` chooses onto `out`, in waiting order. */
static void collect(broker_t *b, zc_link_t *out, bool (*pick)(const breq_t *q, const void *arg),
                    const void *arg)
{
    zc_link_init(out);
    zc_link_t *l = b->waiting.next;
    while (l != &b->waiting) {
        zc_link_t *next = l->next;
        breq_t *q = ZC_CONTAINER(l, breq_t, link);
        if (pick(q, arg)) {
            zc_link_remove(&q->link);
            zc_list_push_back(out, &q->link);
        }
        l = next;
    }
}

/* Waiting for `node` (NULL: any node) to connect. */
static bool waits_for_node(const breq_t *q, const void *node)
{
    char qnode[ZC_NODE_MAX + 1];
    uint16_t slot;
    return q->state == BREQ_AT_NODE && broker__split_cart(q->cart, qnode, &slot) &&
           (node == NULL || strcmp(qnode, node) == 0);
}

/* Decided anew now the role (zc_node_info_t) changed: parked ones once
 * ready or deposed, those waiting for a node when deposed. */
static bool moves_with_role(const breq_t *q, const void *arg)
{
    const zc_node_info_t *info = arg;
    bool deposed = info->role != ZC_ROLE_LEADER;
    return (q->state == BREQ_PARKED && (info->ready || deposed)) ||
           (q->state == BREQ_AT_NODE && deposed);
}

void broker__route_node_connected(broker_t *b, const char *node)
{
    if (b->n_at_node == 0)
        return;
    /* Collect first: forwarding re-links (or finishes) each request. */
    zc_link_t ready;
    collect(b, &ready, waits_for_node, node);
    while (!zc_list_empty(&ready)) {
        breq_t *q = ZC_CONTAINER(ready.next, breq_t, link);
        uint64_t corr = q->corr;
        zc_link_remove(&q->link);
        forward(b, q); /* may answer and free q */
        breq_t *still = zc_map_get_u64(b->inflight, corr);
        if (still && still->state == BREQ_AT_NODE && zc_list_empty(&still->link))
            waiting_insert(b, still); /* not reachable yet: back in its place */
    }
}

void broker__route_role_changed(broker_t *b)
{
    zc_node_info_t info;
    broker__info(b, &info);
    /* Collect the parked requests first: dispatching re-links them. */
    zc_link_t parked;
    collect(b, &parked, moves_with_role, &info);
    while (!zc_list_empty(&parked)) {
        breq_t *q = ZC_CONTAINER(parked.next, breq_t, link);
        zc_link_remove(&q->link);
        if (info.ready)
            dispatch(b, q);
        else
            finish_not_leader(b, q);
    }
}

void broker__route_abort_all(broker_t *b)
{
    while (!zc_list_empty(&b->waiting)) {
        breq_t *q = ZC_CONTAINER(b->waiting.next, breq_t, link);
        finish(b, q, ZC_UNAVAILABLE, "replica shutting down", NULL);
    }
}
