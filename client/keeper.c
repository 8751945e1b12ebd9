/* keeper: renew one session's lease from a thread of its own (zcart.h).
 *
 * The thread owns a zcart_t (its own ZeroMQ socket: sockets are not shared
 * between threads) attached to the session id, and sleeps on a condition
 * variable between keepalives, so zcart_keeper_stop wakes it at once.  A
 * keepalive's seq comes from the same wall-clock rule as every request, and
 * it never reaches a cart, so it cannot collide with the session's own
 * operations in the cart's dedup window. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

struct zcart_keeper {
    pthread_t thread;      /* the renewing thread */
    pthread_mutex_t mu;    /* guards stop and renewals */
    pthread_cond_t cv;     /* signalled by stop */
    bool stop;             /* zcart_keeper_stop was called */
    unsigned renewals;     /* keepalives answered OK */
    int interval_ms;       /* period */
    zcart_t *z;            /* the thread's client (owned) */
    zcart_session_t *s;    /* the session, attached to z (owned) */
};

static void *run(void *arg)
{
    zcart_keeper_t *k = arg;
    bool ended = false;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += k->interval_ms / 1000;
        until.tv_nsec += (long)(k->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) == 0)
            ;
        if (k->stop || ended)
            continue;
        pthread_mutex_unlock(&k->mu);
        zcart_result_t r = {0};
        int rc = zcart_keepalive(k->s, &r);
        bool ok = rc == ZCART_ANSWERED && r.status == 0;
        ended = rc == ZCART_ANSWERED && (r.status == ZCART_STATUS_SESSION_CLOSED ||
                                         r.status == ZCART_STATUS_SESSION_EXPIRED);
        zcart_result_clear(&r);
        pthread_mutex_lock(&k->mu);
        if (ok)
            k->renewals++;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

zcart_keeper_t *zcart_keeper_start(const char *brokers, const zcart_options_t *opt,
                                   const char *session_hex, int interval_ms)
{
    if (interval_ms <= 0)
        return NULL;
    zcart_keeper_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->interval_ms = interval_ms;
    zcart_options_t o;
    if (opt)
        o = *opt;
    else
        memset(&o, 0, sizeof o);
    o.keepalive_ms = 0;     /* the keeper's own session object keeps nothing */
    o.zmq_context = NULL;   /* its own context: its socket lives in its thread */
    k->z = zcart_new(brokers, &o);
    if (k->z == NULL)
        goto err_after_alloc;
    k->s = zcart_session_attach(k->z, session_hex);
    if (k->s == NULL)
        goto err_after_client;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, run, k) != 0)
        goto err_after_sync;
    return k;

err_after_sync:
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    zcart_session_destroy(&k->s);
err_after_client:
    zcart_destroy(&k->z);
err_after_alloc:
    free(k);
    return NULL;
}

void zcart_keeper_stop(zcart_keeper_t **p)
{
    zcart_keeper_t *k = *p;
    if (k == NULL)
        return;
    *p = NULL;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    zcart_session_destroy(&k->s);
    zcart_destroy(&k->z);
    free(k);
}

unsigned zcart_keeper_renewals(zcart_keeper_t *k)
{
    pthread_mutex_lock(&k->mu);
    unsigned n = k->renewals;
    pthread_mutex_unlock(&k->mu);
    return n;
}
