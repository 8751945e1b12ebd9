/* stock_client: see stock_client.h. */
#include "cart/stock_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/map.h"
#include "lib/zmqx.h"
#include "proto/msg.h"
#include "proto/status.h"

#define STOCK_MAX 16

/* One stock instance. */
typedef struct {
    void *sock;          /* DEALER to it */
    zc_watch_t *watch;   /* its watcher */
    char endpoint[256];  /* where it is */
    struct stock_client *owner; /* back pointer */
} instance_t;

/* One check in flight. */
typedef struct {
    uv_timer_t timer;             /* the check's timeout */
    struct stock_client *owner;   /* back pointer */
    uint64_t corr;                /* key in pending */
    stock_cb cb;                  /* caller's callback */
    void *arg;                    /* its argument */
} check_t;

struct stock_client {
    uv_loop_t *loop;              /* the loop */
    instance_t inst[STOCK_MAX];   /* stock instances */
    unsigned n;                   /* instances in use */
    unsigned next;                /* round-robin cursor */
    unsigned timeout_ms;          /* per-check timeout */
    uint64_t next_corr;           /* corr of the next check */
    zc_map_t *pending;            /* corr -> check_t */
    uint64_t dropped;             /* malformed or late answers */
};

static void check_closed(uv_handle_t *h) { free(h->data); }

static void check_finish(check_t *k, int status, uint32_t available)
{
    zc_map_del_u64(k->owner->pending, k->corr);
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, check_closed);
    k->cb(k->arg, status, available);
}

static void on_timeout(uv_timer_t *t) { check_finish(t->data, ZC_STOCK_TIMEOUT, 0); }

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
            if (c->dropped <= 10 || c->dropped % 1000 == 0)
                zc_warn("dropped a malformed answer from stock %s", in->endpoint);
        } else {
            check_t *k = zc_map_get_u64(c->pending, m.corr);
            if (k)
                check_finish(k, m.status, m.qty);
            else
                c->dropped++; /* late: already timed out */
        }
        zc_msg_reset(&m);
        zc_zmsg_close(&z);
    }
}

stock_client_t *stock_client_new(uv_loop_t *loop, void *zctx, const char *endpoints,
                                 unsigned timeout_ms, char *err, size_t errlen)
{
    stock_client_t *c = calloc(1, sizeof *c);
    char list[2048];
    if (c == NULL || (c->pending = zc_map_new()) == NULL) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->timeout_ms = timeout_ms;
    snprintf(list, sizeof list, "%s", endpoints);
    for (char *save, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (c->n == STOCK_MAX) {
            snprintf(err, errlen, "at most %d stock endpoints", STOCK_MAX);
            goto err;
        }
        instance_t *in = &c->inst[c->n];
        int one = 1, ivl = 100;
        in->owner = c;
        snprintf(in->endpoint, sizeof in->endpoint, "%s", ep);
        in->sock = zmq_socket(zctx, ZMQ_DEALER);
        if (in->sock == NULL)
            goto err_zmq;
        c->n++;
        zc_zsock_defaults(in->sock);
        zmq_setsockopt(in->sock, ZMQ_IMMEDIATE, &one, sizeof one);
        zmq_setsockopt(in->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
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
    for (unsigned i = 0; i < c->n; i++) {
        zc_watch_destroy(&c->inst[i].watch);
        if (c->inst[i].sock)
            zmq_close(c->inst[i].sock);
    }
    free(c);
}

unsigned stock_client_pending(stock_client_t *c) { return (unsigned)zc_map_size(c->pending); }

void stock_client_check(stock_client_t *c, const char *product, uint32_t qty, uint64_t deadline,
                        stock_cb cb, void *arg)
{
    zc_msg_t m;
    zc_wbuf_t w;
    zc_msg_init(&m, ZC_MSG_CHECK);
    m.corr = ++c->next_corr;
    snprintf(m.product, sizeof m.product, "%s", product);
    m.qty = qty;
    m.deadline = deadline;
    zc_wbuf_init(&w);
    if (zc_msg_encode(&m, &w) != 0) {
        zc_wbuf_clear(&w);
        cb(arg, ZC_INTERNAL, 0);
        return;
    }
    /* Try each instance once, starting at the round-robin cursor. */
    bool sent = false;
    for (unsigned i = 0; i < c->n && !sent; i++) {
        instance_t *in = &c->inst[(c->next + i) % c->n];
        sent = zc_zsend(in->sock, NULL, 0, w.data, w.len) == 0;
    }
    c->next = (c->next + 1) % c->n;
    zc_wbuf_clear(&w);
    if (!sent) {
        cb(arg, ZC_STOCK_UNAVAILABLE, 0);
        return;
    }
    check_t *k = calloc(1, sizeof *k);
    if (k == NULL || zc_map_put_u64(c->pending, m.corr, k) != 0) {
        free(k);
        cb(arg, ZC_INTERNAL, 0);
        return;
    }
    k->owner = c;
    k->corr = m.corr;
    k->cb = cb;
    k->arg = arg;
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    uv_timer_start(&k->timer, on_timeout, c->timeout_ms, 0);
}
