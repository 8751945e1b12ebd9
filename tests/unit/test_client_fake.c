/* test_client_fake: in-process fake broker replicas for the client tests
 * (#included by test_client_failover.c and test_client_cli.c; not a test
 * of its own).
 *
 * A fake is a thread with a ROUTER bound to tcp://127.0.0.1:<random port>
 * that answers each REQUEST by a script: the n-th request gets script[n]
 * (the last action repeats).  Actions: answer OK (as a one-cart broker
 * would: cart n1.0 gen 7, the item echoed), answer a given KO, answer
 * NOT_LEADER naming another endpoint or "unknown", stay silent, send a
 * stale reply (wrong seq) first, or die (close the socket and end the
 * thread: the kill -9 of a leader as the client sees it).  STATUS and ADMIN
 * are answered from fixed props.  Every request is recorded (session, seq,
 * deadline) under a mutex, and waiting for the fake to have seen N requests
 * is a condition with a deadline, never a sleep. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "proto/msg.h"
#include "proto/status.h"

enum {
    ACT_OK = 1,        /* answer OK */
    ACT_KO,            /* answer fake->ko_status with fake->ko_detail */
    ACT_REDIRECT,      /* NOT_LEADER, detail = fake->redirect */
    ACT_UNKNOWN,       /* NOT_LEADER "unknown" */
    ACT_SILENT,        /* no answer */
    ACT_DIE,           /* close the socket and end the thread */
    ACT_STALE_THEN_OK, /* a reply with seq - 1 first, then OK */
    ACT_UNAVAILABLE,   /* UNAVAILABLE */
    ACT_EXPIRED,       /* EXPIRED */
    ACT_BUSY,          /* BUSY with a retry hint */
};

#define FAKE_MAX_SEEN 256
#define FAKE_MAX_PROPS 32

/* One fake replica. */
typedef struct {
    void *ctx;                               /* context (shared with the test) */
    char endpoint[64];                       /* where it listens */
    int script[8];                           /* action per request index, 0-terminated */
    char redirect[64];                       /* ACT_REDIRECT target */
    int ko_status;                           /* ACT_KO status */
    char ko_detail[64];                      /* ACT_KO detail */
    int reply_delay_ms;                      /* wait this long before each answer */
    char props[FAKE_MAX_PROPS][2][80];       /* STATUS / ADMIN_REPLY props */
    int n_props;                             /* entries in props */
    pthread_t thread;                        /* its thread */
    pthread_mutex_t mu;                      /* guards everything below */
    pthread_cond_t cv;                       /* signalled on every change */
    bool ready;                              /* bound, endpoint set */
    bool dead;                               /* thread ended */
    int n_seen;                              /* REQUESTs received */
    uint64_t seqs[FAKE_MAX_SEEN];            /* their seqs */
    uint64_t deadlines[FAKE_MAX_SEEN];       /* their deadlines */
    uint8_t sessions[FAKE_MAX_SEEN][16];     /* their sessions */
    uint8_t ops[FAKE_MAX_SEEN];              /* their ops */
    int n_status;                            /* STATUS received */
    int n_admin;                             /* ADMIN received */
    char last_command[40];                   /* last ADMIN command */
    char last_admin_props[200];              /* its id/raft/client/cart props, "k=v " each */
    atomic_bool stop;                        /* ask the thread to end */
} fake_t;

static void fake_send(void *sock, zmq_msg_t *rid, zc_msg_t *m)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    zc_msg_encode(m, &w);
    zmq_send(sock, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(sock, w.data, w.len, 0);
    zc_wbuf_clear(&w);
}

static void fake_reply(fake_t *f, void *sock, zmq_msg_t *rid, const zc_msg_t *req, int act)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_REPLY);
    memcpy(r.session, req->session, 16);
    r.seq = req->seq;
    r.replica = 1; /* a ready leader of term 3 decided it */
    r.term = 3;
    switch (act) {
    case ACT_STALE_THEN_OK:
        r.seq = req->seq - 1;
        r.status = ZC_OUT_OF_STOCK;
        snprintf(r.detail, sizeof r.detail, "stale");
        fake_send(sock, rid, &r);
        r.seq = req->seq;
        r.status = ZC_OK;
        r.detail[0] = 0;
        /* fall through */
    case ACT_OK:
        r.status = ZC_OK;
        snprintf(r.cart, sizeof r.cart, "n1.0");
        r.generation = 7;
        if (req->op == ZC_OP_ADD || req->op == ZC_OP_REMOVE)
            zc_msg_add_item(&r, req->product, req->qty);
        break;
    case ACT_KO:
        r.status = (uint8_t)f->ko_status;
        snprintf(r.detail, sizeof r.detail, "%s", f->ko_detail);
        snprintf(r.cart, sizeof r.cart, "n1.0");
        r.generation = 7;
        zc_msg_add_item(&r, "pear", 2);
        break;
    case ACT_REDIRECT:
        r.status = ZC_NOT_LEADER;
        snprintf(r.detail, sizeof r.detail, "%s", f->redirect);
        break;
    case ACT_UNKNOWN:
        r.status = ZC_NOT_LEADER;
        snprintf(r.detail, sizeof r.detail, "unknown");
        break;
    case ACT_UNAVAILABLE:
        r.status = ZC_UNAVAILABLE;
        snprintf(r.detail, sizeof r.detail, "the command did not commit in time");
        break;
    case ACT_EXPIRED:
        r.status = ZC_EXPIRED;
        snprintf(r.detail, sizeof r.detail, "picked up after its deadline");
        break;
    case ACT_BUSY:
        r.status = ZC_BUSY;
        snprintf(r.detail, sizeof r.detail, "the leader is busy; retry after 10 ms");
        break;
    }
    fake_send(sock, rid, &r);
    zc_msg_reset(&r);
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    void *sock = zmq_socket(f->ctx, ZMQ_ROUTER);
    int zero = 0;
    size_t len = sizeof f->endpoint;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(sock, "tcp://127.0.0.1:*");
    pthread_mutex_lock(&f->mu);
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    f->ready = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        zmq_msg_recv(&rid, sock, 0);
        zmq_msg_recv(&body, sock, 0);
        zc_msg_t m;
        const char *why;
        zc_msg_init(&m, 0);
        int act = 0;
        if (zc_msg_decode(&m, zmq_msg_data(&body), zmq_msg_size(&body), &why) == 0) {
            pthread_mutex_lock(&f->mu);
            if (m.id == ZC_MSG_REQUEST) {
                int n = f->n_seen;
                int k = 0;
                while (k < 7 && k < n && f->script[k + 1])
                    k++;
                act = f->script[k];
                if (n < FAKE_MAX_SEEN) {
                    f->seqs[n] = m.seq;
                    f->deadlines[n] = m.deadline;
                    f->ops[n] = m.op;
                    memcpy(f->sessions[n], m.session, 16);
                    f->n_seen++;
                }
            } else if (m.id == ZC_MSG_STATUS) {
                f->n_status++;
            } else if (m.id == ZC_MSG_ADMIN) {
                f->n_admin++;
                snprintf(f->last_command, sizeof f->last_command, "%s", m.command);
                f->last_admin_props[0] = 0;
                static const char *const keys[] = {"id", "raft", "client", "cart"};
                for (int k = 0; k < 4; k++) {
                    const char *v = zc_msg_prop(&m, keys[k]);
                    size_t used = strlen(f->last_admin_props);
                    if (v)
                        snprintf(f->last_admin_props + used, sizeof f->last_admin_props - used,
                                 "%s=%s ", keys[k], v);
                }
            }
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
            if (m.id == ZC_MSG_REQUEST && act == ACT_DIE) {
                zc_msg_reset(&m);
                zmq_msg_close(&rid);
                zmq_msg_close(&body);
                break;
            }
            if (m.id == ZC_MSG_REQUEST && act != ACT_SILENT) {
                if (f->reply_delay_ms > 0)
                    nanosleep(&(struct timespec){0, f->reply_delay_ms * 1000000L}, NULL);
                fake_reply(f, sock, &rid, &m, act);
            } else if (m.id == ZC_MSG_STATUS || m.id == ZC_MSG_ADMIN) {
                zc_msg_t r;
                zc_msg_init(&r, m.id == ZC_MSG_STATUS ? ZC_MSG_STATUS_REPLY : ZC_MSG_ADMIN_REPLY);
                r.corr = m.corr;
                if (m.id == ZC_MSG_ADMIN && f->script[0] == ACT_REDIRECT) {
                    r.status = ZC_NOT_LEADER;
                    snprintf(r.detail, sizeof r.detail, "%s", f->redirect);
                } else if (m.id == ZC_MSG_ADMIN && f->script[0] == ACT_SILENT) {
                    zc_msg_reset(&m);
                    zc_msg_reset(&r);
                    zmq_msg_close(&rid);
                    zmq_msg_close(&body);
                    continue;
                } else {
                    for (int i = 0; i < f->n_props; i++)
                        zc_msg_add_prop(&r, f->props[i][0], "%s", f->props[i][1]);
                }
                fake_send(sock, &rid, &r);
                zc_msg_reset(&r);
            }
        }
        zc_msg_reset(&m);
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    zmq_close(sock);
    pthread_mutex_lock(&f->mu);
    f->dead = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Start a fake answering by `script` (0-terminated, at most 7 actions). */
static fake_t *fake_start(void *ctx, const int *script)
{
    fake_t *f = calloc(1, sizeof *f);
    f->ctx = ctx;
    for (int i = 0; i < 7 && script[i]; i++)
        f->script[i] = script[i];
    f->ko_status = ZC_OUT_OF_STOCK;
    snprintf(f->ko_detail, sizeof f->ko_detail, "only 2 left");
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_create(&f->thread, NULL, fake_main, f);
    pthread_mutex_lock(&f->mu);
    while (!f->ready)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    return f;
}

static void fake_prop(fake_t *f, const char *k, const char *v)
{
    snprintf(f->props[f->n_props][0], 80, "%s", k);
    snprintf(f->props[f->n_props][1], 80, "%s", v);
    f->n_props++;
}

/* Wait until the fake saw at least n requests, at most ms.  True if so. */
__attribute__((unused)) static bool fake_wait_seen(fake_t *f, int n, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    while (f->n_seen < n && pthread_cond_timedwait(&f->cv, &f->mu, &until) == 0) {
    }
    bool ok = f->n_seen >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static int fake_seen(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->n_seen;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fake_stop(fake_t **p)
{
    fake_t *f = *p;
    if (f == NULL)
        return;
    *p = NULL;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}
