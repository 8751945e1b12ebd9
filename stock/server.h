/* server: the stock service's ROUTER socket.
 *
 * Every CHECK is answered on its own: at once, or -- with a delay range set
 * -- after a uniformly random delay on its own libuv timer, so answers to
 * concurrent checks leave in any order (tests use this to prove carts match
 * answers by corr).  Nothing blocks; thousands of checks can wait at once. */
#ifndef ZC_STOCK_SERVER_H
#define ZC_STOCK_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "lib/zsec.h"
#include "proto/status.h"
#include "stock/inventory.h"

typedef struct server server_t;

/* Counters for /metrics (stock/ops.c). */
typedef struct {
    uint64_t by_status[ZC_STATUS_COUNT]; /* checks answered, by status (proto/status.h) */
    uint64_t malformed;                  /* malformed frames */
    uint64_t forbidden;                  /* checks dropped: not a cart key */
    uint64_t delayed;                    /* answers waiting for their --delay now */
} server_stats_t;

/* Bind `endpoint`; delays in ms (max 0: answer at once). */
server_t *server_new(uv_loop_t *loop, void *zctx, const struct zc_sec *sec, const char *endpoint, inventory_t *inv,
                     unsigned delay_min, unsigned delay_max, char *err, size_t errlen);
/* Stop: pending delayed answers are dropped; frees once libuv closed the
 * timers (run the loop). */
void server_destroy(server_t **p);
void server_stats(const server_t *s, server_stats_t *out);

#endif
