/* server: see server.h. */
#include "stock/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/zsec.h"
#include "lib/zmqx.h"
#include "proto/msg.h"
#include "proto/status.h"

#define ID_MAX 255

struct server {
    uv_loop_t *loop;        /* the loop */
    void *sock;             /* ROUTER */
    zc_watch_t *watch;      /* its watcher */
    inventory_t *inv;       /* inventory, not owned */
    unsigned delay_min;     /* ms */
    unsigned delay_max;     /* ms; 0 = no delay */
    uint64_t rng;           /* xorshift state for delays */
    zc_link_t pending;      /* delayed answers */
    uint64_t checks;        /* checks answered */
    uint64_t by_status[ZC_STATUS_COUNT]; /* checks answered, by status */
    uint64_t delayed;       /* answers waiting for their delay now */
    uint64_t malformed;     /* malformed frames */
    const zc_sec_t *sec;    /* CurveZMQ keys, not owned; only cart keys may ask */
    uint64_t forbidden;     /* checks refused for their key's role */
};

/* One answer waiting for its delay. */
typedef struct {
    uv_timer_t timer;     /* fires when the answer is due */
    server_t *srv;        /* owner */
    uint8_t id[ID_MAX];   /* asker's routing id */
    uint8_t id_len;       /* its length */
    uint8_t *body;        /* encoded CHECK_REPLY (owned) */
    size_t body_len;      /* its length */
    zc_link_t link;       /* in srv->pending */
} delayed_t;

static unsigned next_delay(server_t *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    unsigned span = s->delay_max - s->delay_min + 1;
    return s->delay_min + (unsigned)(s->rng % span);
}

static void delayed_closed(uv_handle_t *h)
{
    delayed_t *d = h->data;
    free(d->body);
    free(d);
}

static void delayed_fire(uv_timer_t *t)
{
    delayed_t *d = t->data;
    zc_zsend(d->srv->sock, d->id, d->id_len, d->body, d->body_len);
    zc_link_remove(&d->link);
    d->srv->delayed--;
    uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void answer(server_t *s, const uint8_t *id, size_t id_len, const zc_msg_t *r)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    if (zc_msg_encode(r, &w) != 0) {
        zc_wbuf_clear(&w);
        return;
    }
    s->checks++;
    if (r->status < ZC_STATUS_COUNT)
        s->by_status[r->status]++;
    if (s->delay_max == 0) {
        zc_zsend(s->sock, id, id_len, w.data, w.len);
        zc_wbuf_clear(&w);
        return;
    }
    delayed_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        zc_wbuf_clear(&w);
        return;
    }
    d->srv = s;
    memcpy(d->id, id, id_len);
    d->id_len = (uint8_t)id_len;
    d->body = zc_wbuf_take(&w, &d->body_len);
    uv_timer_init(s->loop, &d->timer);
    d->timer.data = d;
    zc_list_push_back(&s->pending, &d->link);
    s->delayed++;
    uv_timer_start(&d->timer, delayed_fire, next_delay(s), 0);
}

static void malformed(server_t *s, const char *why)
{
    s->malformed++;
    if (zc_log_sampled(s->malformed, 10))
        zc_warn("malformed frame (%s), %llu so far", why, (unsigned long long)s->malformed);
}

/* Answer BAD_REQUEST to a malformed message, echoing the asker's corr when
 * it can be read from a CHECK header in its first frame. */
static void bad_request(server_t *s, const uint8_t *id, size_t id_len, const void *data,
                        size_t len, const char *why)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_CHECK_REPLY);
    malformed(s, why);
    const uint8_t *b = data;
    if (len >= 12 && b[0] == ZC_SIG0 && b[1] == ZC_SIG1 && b[2] == ZC_VERSION &&
        b[3] == ZC_MSG_CHECK) {
        zc_rbuf_t rb;
        zc_rbuf_init(&rb, b + 4, 8);
        r.corr = zc_rbuf_u64(&rb);
    }
    r.status = ZC_BAD_REQUEST;
    answer(s, id, id_len, &r);
}

static void on_check(server_t *s, const uint8_t *id, size_t id_len, const void *data, size_t len)
{
    zc_msg_t m, r;
    const char *why;
    zc_msg_init(&m, 0);
    zc_msg_init(&r, ZC_MSG_CHECK_REPLY);
    if (zc_msg_decode(&m, data, len, &why) != 0 || m.id != ZC_MSG_CHECK) {
        bad_request(s, id, id_len, data, len, why ? why : "not a CHECK");
        zc_msg_reset(&m);
        return;
    }
    r.corr = m.corr;
    uint32_t units = 0;
    if (!zc_product_valid(m.product)) {
        r.status = ZC_BAD_REQUEST;
    } else if (m.deadline && zc_wall_ms() > m.deadline) {
        r.status = ZC_EXPIRED;
    } else {
        int rc = inventory_get(s->inv, m.product, &units);
        r.status = rc < 0 ? ZC_INTERNAL : rc == 1 ? ZC_UNKNOWN_PRODUCT
                                        : units >= m.qty ? ZC_OK : ZC_OUT_OF_STOCK;
    }
    r.qty = units;
    zc_debug("check %s x%u -> %s (%u available)", m.product, m.qty, zc_status_name(r.status),
             units);
    answer(s, id, id_len, &r);
    zc_msg_reset(&m);
}

static void on_readable(void *sock, void *arg)
{
    server_t *s = arg;
    for (int i = 0; i < ZC_ZMQX_BATCH; i++) {
        zc_zmsg_t z;
        if (zc_zmsg_recv(sock, &z) != 0)
            return;
        if (z.n < 2 || zc_zmsg_size(&z, 0) > ID_MAX)
            malformed(s, "no routing id and frame"); /* nobody to answer */
        else if (!zc_sec_role_ok(s->sec, &z.part[1], "cart")) {
            /* Only cart nodes ask the stock service; anything else is
             * dropped unanswered (an answer would confirm products). */
            if (zc_log_sampled(++s->forbidden, 20)) {
                const char *uid = zc_sec_peer(&z.part[1], "User-Id");
                char u[64];
                zc_warn("FORBIDDEN check from key %s (not a cart key), %llu refused so far",
                        zc_escape(uid ? uid : "?", 40, u, sizeof u),
                        (unsigned long long)s->forbidden);
            }
        }
        else if (z.n > 2 || z.over)
            bad_request(s, zc_zmsg_data(&z, 0), zc_zmsg_size(&z, 0), zc_zmsg_data(&z, 1),
                        zc_zmsg_size(&z, 1), "a message must be exactly one frame");
        else
            on_check(s, zc_zmsg_data(&z, 0), zc_zmsg_size(&z, 0), zc_zmsg_data(&z, 1),
                     zc_zmsg_size(&z, 1));
        zc_zmsg_close(&z);
    }
}

server_t *server_new(uv_loop_t *loop, void *zctx, const struct zc_sec *sec, const char *endpoint, inventory_t *inv,
                     unsigned delay_min, unsigned delay_max, char *err, size_t errlen)
{
    server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->inv = inv;
    s->delay_min = delay_min;
    s->delay_max = delay_max;
    s->sec = sec;
    s->rng = zc_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    zc_link_init(&s->pending);
    /* Per connection (a cart node): one that sends checks faster than they
     * are answered is held back by TCP past this many unread frames, so a
     * flood cannot grow the service's memory (100,000 did by up to ~18 MB
     * under integration/test_storm on a busy machine); a node's checks in
     * flight are far fewer. */
    int hwm = 10000;
    s->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (s->sock == NULL)
        goto err;
    zc_zsock_defaults(s->sock);
    if (zc_sec_server(sec, s->sock, "cart") != 0)
        goto err;
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(s->sock, endpoint) != 0)
        goto err;
    s->watch = zc_watch_new(loop, s->sock, on_readable, s);
    if (s->watch == NULL)
        goto err;
    return s;
err:
    snprintf(err, errlen, "%s: %s", endpoint, zmq_strerror(zmq_errno()));
    if (s->sock)
        zmq_close(s->sock);
    free(s);
    return NULL;
}

void server_destroy(server_t **p)
{
    server_t *s = *p;
    if (s == NULL)
        return;
    *p = NULL;
    while (!zc_list_empty(&s->pending)) {
        delayed_t *d = ZC_CONTAINER(s->pending.next, delayed_t, link);
        zc_link_remove(&d->link);
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
    }
    zc_watch_destroy(&s->watch);
    zmq_close(s->sock);
    zc_info("answered %llu checks, %llu malformed frames", (unsigned long long)s->checks,
            (unsigned long long)s->malformed);
    free(s);
}

void server_stats(const server_t *s, server_stats_t *out)
{
    memcpy(out->by_status, s->by_status, sizeof out->by_status);
    out->malformed = s->malformed;
    out->forbidden = s->forbidden;
    out->delayed = s->delayed;
}
