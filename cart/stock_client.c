/* stock_client: see stock_client.h. */
#include "cart/stock_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/list.h"
#include "lib/log.h"
#include "lib/zsec.h"
#include "lib/map.h"
#include "lib/zmqx.h"
#include "proto/msg.h"
#include "proto/status.h"

#define STOCK_MAX 16
/* Start-up: how often a check that found no instance connected yet retries. */
#define CONNECT_RETRY_MS 10

/* One stock instance. */
typedef struct {
    void *sock;                 /* DEALER to it */
    zc_watch_t *watch;          /* its watcher */
    char endpoint[256];         /* where it is */
    stock_breaker_t brk;        /* its breaker */
    struct stock_client *owner; /* back pointer */
} instance_t;

/* One check in flight: a user's check, or a probe copy (cb NULL). */
typedef struct {
    uv_timer_t timer;           /* the check's timeout */
    struct stock_client *owner; /* back pointer */
    uint64_t corr;              /* key in pending */
    instance_t *inst;           /* where it was sent */
    uint32_t ticket;            /* inst's breaker epoch when it was sent */
    stock_cb cb;                /* caller's callback; NULL for a probe copy */
    void *arg;                  /* its argument */
} check_t;

struct stock_client {
    uv_loop_t *loop;                /* the loop */
    instance_t inst[STOCK_MAX];     /* stock instances */
    unsigned n;                     /* instances in use */
    unsigned next;                  /* round-robin cursor */
    unsigned timeout_ms;            /* per-check timeout */
    stock_breaker_policy_t policy;  /* every instance's breaker policy */
    uint64_t next_corr;             /* corr of the next check */
    zc_map_t *pending;              /* corr -> check_t */
    uint64_t dropped;               /* malformed or late answers */
    uint64_t started_ms;            /* loop time at creation (start-up grace) */
    bool connected_once;            /* some instance took a check since start */
    zc_link_t deferred;             /* deferred_t waiting for a first connection */
};

/* A check made before any instance was ever connected (the node's first
 * moments: ZeroMQ connects asynchronously).  It is retried every
 * CONNECT_RETRY_MS until an instance takes it or its timeout is spent, so
 * a node that just started does not answer STOCK_UNAVAILABLE for a
 * connection that is still being made.  Once any instance has been
 * connected, "not connected" means gone, and fails fast as usual. */
typedef struct {
    uv_timer_t timer;           /* the retry timer */
    struct stock_client *owner; /* back pointer */
    char product[ZC_PRODUCT_MAX + 1]; /* the check's product */
    uint32_t qty;               /* its units */
    uint64_t deadline;          /* its deadline (wire) */
    uint64_t until;             /* loop time its budget ends */
    stock_cb cb;                /* caller's callback */
    void *arg;                  /* its argument */
    zc_link_t link;             /* in owner->deferred */
} deferred_t;

/* Log a breaker move of `in` (from -> its state now), once per move. */
static void log_move(stock_client_t *c, instance_t *in, uint8_t from, const char *why)
{
    uint8_t to = in->brk.state;
    uint64_t left = stock_breaker_wait_left_ms(&in->brk, uv_now(c->loop));
    if (to == from)
        return;
    if (from == SB_CLOSED && to == SB_OPEN)
        zc_warn("stock %s: breaker OPEN after %u failed checks in a row (the last %s); "
                "checks skip it for %" PRIu64 " ms",
                in->endpoint, c->policy.failures, why, left);
    else if (to == SB_OPEN)
        zc_warn("stock %s: breaker OPEN again, the probe check %s; next probe in %" PRIu64 " ms",
                in->endpoint, why, left);
    else if (to == SB_HALF_OPEN)
        zc_info("stock %s: breaker HALF_OPEN, one probe check goes through", in->endpoint);
    else
        zc_info("stock %s: breaker CLOSED, the probe check was answered", in->endpoint);
}

static void check_closed(uv_handle_t *h) { free(h->data); }
static void deferred_closed(uv_handle_t *h) { free(h->data); }

/* The one way a check ends: out of pending, its result fed to its
 * instance's breaker, then the callback (none for a probe copy). */
static void check_finish(check_t *k, int status, uint32_t available, const char *detail)
{
    stock_client_t *c = k->owner;
    instance_t *in = k->inst;
    bool ok = status != ZC_STOCK_TIMEOUT && status != ZC_INTERNAL;
    uint8_t from = in->brk.state;
    zc_map_del_u64(c->pending, k->corr);
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, check_closed);
    if (stock_breaker_result(&in->brk, &c->policy, k->ticket, ok, uv_now(c->loop)) == 0)
        log_move(c, in, from, status == ZC_STOCK_TIMEOUT ? "timed out" : "was answered INTERNAL");
    if (k->cb)
        k->cb(k->arg, status, available, detail);
}

static void on_timeout(uv_timer_t *t)
{
    check_t *k = t->data;
    char detail[ZC_DETAIL_MAX + 1];
    snprintf(detail, sizeof detail, "stock %.200s did not answer within %u ms", k->inst->endpoint,
             k->owner->timeout_ms);
    check_finish(k, ZC_STOCK_TIMEOUT, 0, detail);
}

static void on_answer(void *sock, void *arg)
{
    instance_t *in = arg;
    stock_client_t *c = in->owner;
    for (int i = 0; i < ZC_ZMQX_BATCH; i++) {
        zc_zmsg_t z;
        if (zc_zmsg_recv(sock, &z) != 0)
            return;
        zc_msg_t m;
        const char *why;
        zc_msg_init(&m, 0);
        if (z.n != 1 || z.over ||
            zc_msg_decode(&m, zc_zmsg_data(&z, 0), zc_zmsg_size(&z, 0), &why) != 0 ||
            m.id != ZC_MSG_CHECK_REPLY) {
            c->dropped++;
            if (zc_log_sampled(c->dropped, 10))
                zc_warn("dropped a malformed answer from stock %s", in->endpoint);
        } else {
            check_t *k = zc_map_get_u64(c->pending, m.corr);
            if (k)
                check_finish(k, m.status, m.qty,
                             m.status == ZC_INTERNAL ? "the stock service failed" : NULL);
            else
                c->dropped++; /* late: already timed out */
        }
        zc_msg_reset(&m);
        zc_zmsg_close(&z);
    }
}

stock_client_t *stock_client_new(uv_loop_t *loop, void *zctx, const stock_client_config_t *cfg,
                                 char *err, size_t errlen)
{
    stock_client_t *c = calloc(1, sizeof *c);
    char list[2048];
    if (c == NULL || (c->pending = zc_map_new()) == NULL) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->timeout_ms = cfg->timeout_ms;
    c->started_ms = uv_now(loop);
    zc_link_init(&c->deferred);
    c->policy = cfg->breaker;
    snprintf(list, sizeof list, "%s", cfg->endpoints);
    for (char *save, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (c->n == STOCK_MAX) {
            snprintf(err, errlen, "at most %d stock endpoints", STOCK_MAX);
            goto err;
        }
        instance_t *in = &c->inst[c->n];
        int one = 1, ivl = 100;
        in->owner = c;
        stock_breaker_init(&in->brk);
        snprintf(in->endpoint, sizeof in->endpoint, "%s", ep);
        in->sock = zmq_socket(zctx, ZMQ_DEALER);
        if (in->sock == NULL)
            goto err_zmq;
        c->n++;
        zc_zsock_defaults(in->sock);
        zmq_setsockopt(in->sock, ZMQ_IMMEDIATE, &one, sizeof one);
        zmq_setsockopt(in->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        if (cfg->sec && zc_sec_client(cfg->sec, in->sock, cfg->stock_key) != 0)
            goto err_zmq;
        if (zmq_connect(in->sock, ep) != 0)
            goto err_zmq;
        in->watch = zc_watch_new(loop, in->sock, on_answer, in);
        if (in->watch == NULL)
            goto err_zmq;
    }
    if (c->n == 0) {
        snprintf(err, errlen, "no stock endpoint given");
        goto err;
    }
    return c;
err_zmq:
    snprintf(err, errlen, "stock endpoint %s: %s", c->inst[c->n - 1].endpoint,
             zmq_strerror(zmq_errno()));
err:
    stock_client_destroy(&c);
    return NULL;
}

static int drop_check(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    (void)arg;
    check_t *ck = v;
    uv_timer_stop(&ck->timer);
    uv_close((uv_handle_t *)&ck->timer, check_closed);
    return 0;
}

void stock_client_destroy(stock_client_t **p)
{
    stock_client_t *c = *p;
    if (c == NULL)
        return;
    *p = NULL;
    zc_map_each(c->pending, drop_check, NULL);
    zc_map_destroy(&c->pending);
    while (!zc_list_empty(&c->deferred)) {
        deferred_t *d = ZC_CONTAINER(c->deferred.next, deferred_t, link);
        zc_link_remove(&d->link);
        uv_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, deferred_closed);
    }
    for (unsigned i = 0; i < c->n; i++) {
        zc_watch_destroy(&c->inst[i].watch);
        if (c->inst[i].sock)
            zmq_close(c->inst[i].sock);
    }
    free(c);
}

unsigned stock_client_pending(stock_client_t *c) { return (unsigned)zc_map_size(c->pending); }

/* Send CHECK m under `corr` to `in`: 0 if it went out. */
static int send_to(instance_t *in, zc_msg_t *m, uint64_t corr)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    m->corr = corr;
    int rc = zc_msg_encode(m, &w) == 0 ? zc_zsend(in->sock, NULL, 0, w.data, w.len) : -1;
    zc_wbuf_clear(&w);
    return rc;
}

/* k went out to `in`: take its ticket (the breaker may half-open and take
 * its probe) and start its timer. */
static void launch(stock_client_t *c, check_t *k, instance_t *in, uint64_t timeout_ms)
{
    uint8_t from = in->brk.state;
    k->inst = in;
    k->ticket = stock_breaker_sent(&in->brk, &c->policy, uv_now(c->loop));
    log_move(c, in, from, "");
    c->connected_once = true;
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    uv_timer_start(&k->timer, on_timeout, timeout_ms, 0);
}

/* A new check_t under a fresh corr, in pending; NULL if out of memory. */
static check_t *new_check(stock_client_t *c, stock_cb cb, void *arg)
{
    check_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->owner = c;
    k->corr = ++c->next_corr;
    k->cb = cb;
    k->arg = arg;
    if (zc_map_put_u64(c->pending, k->corr, k) != 0) {
        free(k);
        return NULL;
    }
    return k;
}

/* Try each instance once from the cursor whose breaker admits `want`;
 * the one that took the check, or NULL. */
static instance_t *send_first(stock_client_t *c, zc_msg_t *m, uint64_t corr,
                              stock_breaker_admit_t want, uint64_t now)
{
    for (unsigned i = 0; i < c->n; i++) {
        instance_t *in = &c->inst[(c->next + i) % c->n];
        if (stock_breaker_admits(&in->brk, now) == want && send_to(in, m, corr) == 0)
            return in;
    }
    return NULL;
}

/* Why no instance took a check: each instance's state. */
static void unavailable_detail(stock_client_t *c, uint64_t now, char *out, size_t len)
{
    size_t used = (size_t)snprintf(out, len, "no stock instance takes checks:");
    for (unsigned i = 0; i < c->n && used < len; i++) {
        instance_t *in = &c->inst[i];
        char state[64];
        if (in->brk.state == SB_OPEN && stock_breaker_admits(&in->brk, now) == SB_ADMIT_NONE)
            snprintf(state, sizeof state, "breaker open (%" PRIu64 " ms left)",
                     stock_breaker_wait_left_ms(&in->brk, now));
        else if (in->brk.state == SB_HALF_OPEN && in->brk.probing)
            snprintf(state, sizeof state, "breaker half-open, probe out");
        else
            snprintf(state, sizeof state, "not connected");
        used += (size_t)snprintf(out + used, len - used, "%s %s %s", i ? "," : "", in->endpoint,
                                 state);
    }
}

/* Send one user check now, with timeout_ms left, plus probe copies:
 * true if an instance took it (k launched), false if none could (k freed). */
static bool try_send(stock_client_t *c, zc_msg_t *m, check_t *k, uint64_t timeout_ms, uint64_t now)
{
    /* A healthy instance first; else one that takes the check as its probe. */
    instance_t *to = send_first(c, m, k->corr, SB_ADMIT_CHECK, now);
    if (to == NULL)
        to = send_first(c, m, k->corr, SB_ADMIT_PROBE, now);
    if (to == NULL)
        return false;
    launch(c, k, to, timeout_ms);
    c->next = (unsigned)(to - c->inst + 1) % c->n;
    /* Every other instance that admits a probe gets a copy of the check as
     * its probe, so its breaker can close without a user waiting on it. */
    for (unsigned i = 0; i < c->n; i++) {
        instance_t *in = &c->inst[i];
        if (in == to || stock_breaker_admits(&in->brk, now) != SB_ADMIT_PROBE)
            continue;
        check_t *probe = new_check(c, NULL, NULL);
        if (probe == NULL)
            break;
        if (send_to(in, m, probe->corr) != 0) {
            zc_map_del_u64(c->pending, probe->corr);
            free(probe);
            continue;
        }
        launch(c, probe, in, c->timeout_ms);
    }
    return true;
}

/* Start a check with timeout_ms of budget left; false (nothing called
 * back) if no instance could take it. */
static bool start_check(stock_client_t *c, const char *product, uint32_t qty, uint64_t deadline,
                        uint64_t timeout_ms, stock_cb cb, void *arg, bool *oom)
{
    uint64_t now = uv_now(c->loop);
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_CHECK);
    snprintf(m.product, sizeof m.product, "%s", product);
    m.qty = qty;
    m.deadline = deadline;
    *oom = false;
    check_t *k = new_check(c, cb, arg);
    if (k == NULL) {
        *oom = true;
        return false;
    }
    if (try_send(c, &m, k, timeout_ms, now))
        return true;
    zc_map_del_u64(c->pending, k->corr);
    free(k);
    return false;
}

static void unavailable(stock_client_t *c, stock_cb cb, void *arg)
{
    char detail[ZC_DETAIL_MAX + 1];
    unavailable_detail(c, uv_now(c->loop), detail, sizeof detail);
    cb(arg, ZC_STOCK_UNAVAILABLE, 0, detail);
}

static void on_retry(uv_timer_t *t)
{
    deferred_t *d = t->data;
    stock_client_t *c = d->owner;
    uint64_t now = uv_now(c->loop);
    bool oom, sent = false;
    if (now < d->until)
        sent = start_check(c, d->product, d->qty, d->deadline, d->until - now, d->cb, d->arg, &oom);
    else
        oom = false;
    if (!sent && !oom && now < d->until)
        return; /* still connecting: the timer fires again */
    zc_link_remove(&d->link);
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, deferred_closed);
    if (oom)
        d->cb(d->arg, ZC_INTERNAL, 0, "out of memory");
    else if (!sent)
        unavailable(c, d->cb, d->arg);
}

void stock_client_check(stock_client_t *c, const char *product, uint32_t qty, uint64_t deadline,
                        stock_cb cb, void *arg)
{
    uint64_t now = uv_now(c->loop);
    bool oom;
    if (start_check(c, product, qty, deadline, c->timeout_ms, cb, arg, &oom))
        return;
    if (oom) {
        cb(arg, ZC_INTERNAL, 0, "out of memory");
        return;
    }
    if (!c->connected_once && now < c->started_ms + c->timeout_ms) {
        deferred_t *d = calloc(1, sizeof *d);
        if (d != NULL) {
            d->owner = c;
            snprintf(d->product, sizeof d->product, "%s", product);
            d->qty = qty;
            d->deadline = deadline;
            d->until = now + c->timeout_ms;
            d->cb = cb;
            d->arg = arg;
            uv_timer_init(c->loop, &d->timer);
            d->timer.data = d;
            uv_timer_start(&d->timer, on_retry, CONNECT_RETRY_MS, CONNECT_RETRY_MS);
            zc_list_push_back(&c->deferred, &d->link);
            return;
        }
    }
    unavailable(c, cb, arg);
}
