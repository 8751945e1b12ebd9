/* pool: cluster calls for the gateway's event loop, made by a fixed set of
 * worker threads.
 *
 * libzcart's calls block (their failover loop waits on the socket), and the
 * gateway's loop must not.  So each worker owns one zcart_t -- its own
 * connection to the cluster -- and takes jobs from one queue; a finished job
 * goes back to the loop through a uv_async, whose callback hands it to the
 * job's `done` on the loop thread.  Nothing waits per HTTP request: a
 * request is a job in the queue while its connection is suspended (lib/
 * httpd.h).  Calls in flight at once are at most the workers; jobs waiting
 * beyond that are bounded by the caller (pool_load). */
#ifndef ZC_GATEWAY_POOL_H
#define ZC_GATEWAY_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "client/zcart.h"
#include "lib/list.h"

typedef enum {
    JOB_ADD,    /* zcart_add */
    JOB_REMOVE, /* zcart_remove */
    JOB_LIST,   /* zcart_list */
    JOB_CLOSE,  /* zcart_close */
    JOB_STATUS, /* zcart_status */
} job_kind_t;

typedef struct job job_t;

/* One cluster call: filled by the loop, run by a worker, finished on the
 * loop. */
struct job {
    job_kind_t kind;                     /* what to call */
    char session[ZCART_SESSION_HEX + 1]; /* cart ops: the session's hex id */
    char product[ZCART_PRODUCT_MAX + 1]; /* add, remove: the product */
    uint32_t qty;                        /* add, remove: units */
    uint64_t seq;                        /* cart ops: the seq to use, 0: the seq rule */
    int rc;                              /* the call's zcart_rc_t */
    zcart_result_t res;                  /* cart ops: the answer (owned) */
    zcart_status_t st;                   /* status: the answer (owned) */
    uint64_t queued_us;                  /* when it was queued (monotonic) */
    uint64_t done_us;                    /* when its call returned */
    void (*done)(job_t *job, void *arg); /* on the loop, once */
    void *arg;                           /* its argument */
    zc_link_t link;                      /* in the pool's queues */
};

typedef struct pool pool_t;

/* Start `workers` threads, each with a zcart_t for brokers and opt (copied
 * by libzcart).  NULL with err on failure. */
pool_t *pool_new(uv_loop_t *loop, unsigned workers, const char *brokers, const zcart_options_t *opt,
                 char *err, size_t errlen);
/* Queue a job; its done runs later on the loop. */
void pool_submit(pool_t *p, job_t *job);
/* Jobs submitted and not finished yet (queued or running). */
unsigned pool_load(const pool_t *p);
/* Stop: every queued job still finishes (its done runs); then the threads
 * are joined and everything is freed once the loop closed the async
 * handle.  *p is NULL after. */
void pool_destroy(pool_t **p);
/* Free what a finished job owns (not the job itself). */
void job_clear(job_t *job);

#endif
