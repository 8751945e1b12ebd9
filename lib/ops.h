/* ops: the operations endpoints every zcart daemon serves with --http.
 *
 *   GET /healthz   200 "ok": the process is up and its loop turns (the
 *                  answer comes from the loop, so a wedged loop times out)
 *   GET /readyz    200 "ready", or 503 and the reason: the daemon's own
 *                  test (a broker: a ready leader, or a follower close to
 *                  the leader; a cart node: it has a broker that answers;
 *                  stock: serving)
 *   GET /metrics   the Prometheus text page the daemon writes (lib/prom.h)
 *   anything else  404
 *
 * This module only routes; the daemon supplies the two functions and owns
 * what they read.  Both run on the daemon's loop (lib/httpd.h). */
#ifndef ZC_LIB_OPS_H
#define ZC_LIB_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/prom.h"

typedef struct zc_ops zc_ops_t;

typedef struct {
    /* Write the daemon's metric families into p. */
    void (*metrics)(void *arg, zc_prom_t *p);
    /* Ready?  When not, write why (one line) into why. */
    bool (*ready)(void *arg, char *why, size_t cap);
} zc_ops_fns_t;

/* Serve on addr ("HOST:PORT", lib/httpd.h); NULL with err filled. */
zc_ops_t *zc_ops_new(uv_loop_t *loop, const char *addr, const zc_ops_fns_t *fns, void *arg,
                     char *err, size_t errlen);
/* The port served (the chosen one when PORT was 0). */
unsigned zc_ops_port(const zc_ops_t *o);
/* Stop serving; frees once the loop closed the handles. */
void zc_ops_destroy(zc_ops_t **p);

#endif
