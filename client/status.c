/* status: ask every replica for STATUS at once (docs/protocol.md §3.1).
 *
 * Unlike cart operations, which talk to one replica at a time, a status
 * query fans out: one fresh watched connection per known replica, one
 * STATUS each (own corr), then a single poll loop over all of them until
 * every replica answered, failed (connection refused or lost: reported at
 * once, not after the timeout) or the status timeout passed.  So the whole
 * query takes at most one status timeout, however many replicas are down.
 *
 * Props are copied as received, in order, known keys or not: the status
 * keys grow with the broker, and callers (the CLI's --json) pass them on.
 * The client's own connection and replica rotation are not touched. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "lib/clock.h"

void zcart_status_clear(zcart_status_t *st)
{
    for (size_t i = 0; i < st->n_replicas; i++)
        free(st->replicas[i].props);
    free(st->replicas);
    memset(st, 0, sizeof *st);
}

const char *zcart_replica_prop(const zcart_replica_t *r, const char *key)
{
    for (size_t i = 0; i < r->n_props; i++)
        if (strcmp(r->props[i].key, key) == 0)
            return r->props[i].value;
    return NULL;
}

/* Per replica state of one query. */
typedef struct {
    zcf_conn_t conn;  /* its connection */
    uint64_t corr;    /* the corr its STATUS carries */
    uint64_t sent_us; /* monotonic time of the send */
    bool pending;     /* still waiting for it */
} probe_t;

/* Copy a STATUS_REPLY's props into r.  -1 if out of memory. */
static int take_props(zcart_replica_t *r, const zc_msg_t *m)
{
    if (m->n_props == 0)
        return 0;
    r->props = calloc(m->n_props, sizeof *r->props);
    if (r->props == NULL)
        return -1;
    for (size_t i = 0; i < m->n_props; i++) {
        snprintf(r->props[i].key, sizeof r->props[i].key, "%s", m->props[i].key);
        snprintf(r->props[i].value, sizeof r->props[i].value, "%s", m->props[i].value);
    }
    r->n_props = m->n_props;
    return 0;
}

/* Look at one pending probe without blocking; clears p->pending when its
 * replica is decided.  -1 on out of memory. */
static int check(probe_t *p, zcart_replica_t *r)
{
    for (;;) {
        zmq_msg_t f;
        zcf_wait_t w = zcf_conn_wait(&p->conn, 0, &f);
        switch (w) {
        case ZCF_TIMEOUT:
            return 0;
        case ZCF_LOST:
            snprintf(r->error, sizeof r->error, "connection lost");
            p->pending = false;
            return 0;
        case ZCF_REFUSED:
            snprintf(r->error, sizeof r->error, "connection refused");
            p->pending = false;
            return 0;
        case ZCF_FAIL:
            snprintf(r->error, sizeof r->error, "%s", zmq_strerror(errno));
            p->pending = false;
            return 0;
        case ZCF_GOT:
            break;
        }
        zc_msg_t m;
        const char *why;
        zc_msg_init(&m, 0);
        int rc = zc_msg_decode(&m, zmq_msg_data(&f), zmq_msg_size(&f), &why);
        zmq_msg_close(&f);
        if (rc == 0 && m.id == ZC_MSG_STATUS_REPLY && m.corr == p->corr) {
            r->reachable = true;
            r->rtt_us = zc_mono_us() - p->sent_us;
            p->pending = false;
            rc = take_props(r, &m);
            zc_msg_reset(&m);
            return rc;
        }
        zc_msg_reset(&m); /* not ours: look again */
    }
}

int zcart_status(zcart_t *z, zcart_status_t *st)
{
    zcart_status_clear(st);
    size_t n = z->list.n;
    int rc = ZCART_ESYS;
    probe_t *probes = calloc(n, sizeof *probes);
    zmq_pollitem_t *items = calloc(2 * n, sizeof *items);
    st->replicas = calloc(n, sizeof *st->replicas);
    if (probes == NULL || items == NULL || st->replicas == NULL)
        goto out;
    st->n_replicas = n;
    int timeout = z->opt.status_timeout_ms < z->opt.total_timeout_ms ? z->opt.status_timeout_ms
                                                                     : z->opt.total_timeout_ms;
    for (size_t i = 0; i < n; i++) {
        zcart_replica_t *r = &st->replicas[i];
        probe_t *p = &probes[i];
        snprintf(r->endpoint, sizeof r->endpoint, "%s", z->list.eps[i]);
        if (zcf_conn_open(&p->conn, z->ctx, r->endpoint, &z->opt) != 0) {
            snprintf(r->error, sizeof r->error, "cannot connect: %s", zmq_strerror(errno));
            continue;
        }
        zc_msg_t m;
        zc_wbuf_t w;
        zc_msg_init(&m, ZC_MSG_STATUS);
        zc_wbuf_init(&w);
        p->corr = m.corr = z->next_corr++;
        if (zc_msg_encode(&m, &w) == 0 && !w.oom &&
            zmq_send(p->conn.dealer, w.data, w.len, ZMQ_DONTWAIT) == (int)w.len) {
            p->pending = true;
            p->sent_us = zc_mono_us();
        } else {
            snprintf(r->error, sizeof r->error, "cannot send: %s", zmq_strerror(errno));
        }
        zc_wbuf_clear(&w);
    }
    uint64_t until = zc_mono_ms() + (uint64_t)timeout;
    for (;;) {
        int k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!probes[i].pending)
                continue;
            if (check(&probes[i], &st->replicas[i]) != 0)
                goto out;
            if (probes[i].pending) {
                items[k++] = (zmq_pollitem_t){probes[i].conn.dealer, 0, ZMQ_POLLIN, 0};
                items[k++] = (zmq_pollitem_t){probes[i].conn.monitor, 0, ZMQ_POLLIN, 0};
            }
        }
        uint64_t now = zc_mono_ms();
        if (k == 0 || now >= until)
            break;
        if (zmq_poll(items, k, (long)(until - now)) < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < n; i++)
            probes[i].conn.monitor_quiet = false; /* zmq_poll processed its commands */
    }
    rc = ZCART_EUNREACHABLE;
    for (size_t i = 0; i < n; i++) {
        if (probes[i].pending)
            snprintf(st->replicas[i].error, sizeof st->replicas[i].error,
                     "no answer within %d ms", timeout);
        if (st->replicas[i].reachable)
            rc = ZCART_ANSWERED;
    }
out:
    if (probes)
        for (size_t i = 0; i < n; i++)
            zcf_conn_close(&probes[i].conn);
    free(probes);
    free(items);
    return rc;
}
