/* pool: see pool.h. */
#include "gateway/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lib/clock.h"
#include "lib/log.h"

struct pool {
    pthread_mutex_t lock; /* guards the two queues, load and stopping */
    pthread_cond_t work;  /* signalled when a job is queued or on stop */
    zc_link_t todo;       /* jobs waiting for a worker */
    zc_link_t finished;   /* jobs whose call returned, for the loop */
    unsigned load;        /* submitted and not handed back to the loop yet */
    bool stopping;        /* pool_destroy ran: workers leave once todo is empty */
    uv_async_t wake;      /* tells the loop that finished is not empty */
    pthread_t *threads;   /* the workers */
    zcart_t **clients;    /* one client per worker */
    void *zctx;           /* the ZeroMQ context they share (owned) */
    unsigned n;           /* workers started */
};

/* Run one job's call with the worker's client. */
static void run_job(zcart_t *z, job_t *j)
{
    if (j->kind == JOB_STATUS) {
        j->rc = zcart_status(z, &j->st);
        return;
    }
    zcart_session_t *s = zcart_session_attach(z, j->session);
    if (s == NULL) {
        j->rc = ZCART_EINVAL;
        snprintf(j->res.detail, sizeof j->res.detail, "session: want 32 hex digits, not all zero");
        return;
    }
    if (j->seq)
        zcart_session_use_seq(s, j->seq);
    switch (j->kind) {
    case JOB_ADD: j->rc = zcart_add(s, j->product, j->qty, &j->res); break;
    case JOB_REMOVE: j->rc = zcart_remove(s, j->product, j->qty, &j->res); break;
    case JOB_LIST: j->rc = zcart_list(s, &j->res); break;
    case JOB_CLOSE: j->rc = zcart_close(s, &j->res); break;
    default: j->rc = ZCART_EINVAL; break;
    }
    zcart_session_destroy(&s);
}

typedef struct {
    pool_t *p;  /* the pool */
    unsigned i; /* this worker's index */
} worker_arg_t;

static void *worker(void *arg)
{
    worker_arg_t *w = arg;
    pool_t *p = w->p;
    zcart_t *z = p->clients[w->i];
    free(w);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (zc_list_empty(&p->todo) && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (zc_list_empty(&p->todo))
            break; /* stopping, nothing left */
        zc_link_t *l = p->todo.next;
        zc_link_remove(l);
        pthread_mutex_unlock(&p->lock);
        job_t *j = ZC_CONTAINER(l, job_t, link);
        run_job(z, j);
        j->done_us = zc_mono_us();
        pthread_mutex_lock(&p->lock);
        zc_list_push_back(&p->finished, &j->link);
        uv_async_send(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* On the loop: hand every finished job to its done. */
static void on_wake(uv_async_t *a)
{
    pool_t *p = a->data;
    zc_link_t batch;
    zc_link_init(&batch);
    pthread_mutex_lock(&p->lock);
    while (!zc_list_empty(&p->finished)) {
        zc_link_t *l = p->finished.next;
        zc_link_remove(l);
        zc_list_push_back(&batch, l);
        p->load--;
    }
    pthread_mutex_unlock(&p->lock);
    while (!zc_list_empty(&batch)) {
        zc_link_t *l = batch.next;
        zc_link_remove(l);
        job_t *j = ZC_CONTAINER(l, job_t, link);
        j->done(j, j->arg);
    }
}

pool_t *pool_new(uv_loop_t *loop, unsigned workers, const char *brokers, const zcart_options_t *opt,
                 char *err, size_t errlen)
{
    pool_t *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(workers, sizeof *p->threads)) == NULL ||
        (p->clients = calloc(workers, sizeof *p->clients)) == NULL) {
        snprintf(err, errlen, "out of memory");
        if (p)
            free(p->threads);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    zc_link_init(&p->todo);
    zc_link_init(&p->finished);
    uv_async_init(loop, &p->wake, on_wake);
    p->wake.data = p;
    zcart_options_t o = *opt;
    o.zmq_context = p->zctx = zmq_ctx_new();
    for (; p->zctx && p->n < workers; p->n++) {
        p->clients[p->n] = zcart_new(brokers, &o);
        worker_arg_t *w = malloc(sizeof *w);
        if (p->clients[p->n] == NULL || w == NULL) {
            snprintf(err, errlen, "cannot make a cluster client for %s", brokers);
            free(w);
            zcart_destroy(&p->clients[p->n]);
            break;
        }
        *w = (worker_arg_t){p, p->n};
        if (pthread_create(&p->threads[p->n], NULL, worker, w) != 0) {
            snprintf(err, errlen, "cannot start a worker thread");
            free(w);
            zcart_destroy(&p->clients[p->n]);
            break;
        }
    }
    if (p->n < workers) {
        pool_destroy(&p);
        return NULL;
    }
    return p;
}

void pool_submit(pool_t *p, job_t *job)
{
    job->queued_us = zc_mono_us();
    pthread_mutex_lock(&p->lock);
    zc_list_push_back(&p->todo, &job->link);
    p->load++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

unsigned pool_load(const pool_t *p) { return p->load; }

static void on_closed(uv_handle_t *h)
{
    pool_t *p = h->data;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    free(p->threads);
    free(p->clients);
    free(p);
}

void pool_destroy(pool_t **pp)
{
    pool_t *p = *pp;
    if (p == NULL)
        return;
    *pp = NULL;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n; i++) {
        pthread_join(p->threads[i], NULL);
        zcart_destroy(&p->clients[i]);
    }
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    on_wake(&p->wake); /* the last finished jobs, on this (the loop's) thread */
    uv_close((uv_handle_t *)&p->wake, on_closed);
}

void job_clear(job_t *job)
{
    zcart_result_clear(&job->res);
    zcart_status_clear(&job->st);
}
