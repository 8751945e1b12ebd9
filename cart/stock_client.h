/* stock_client: a cart node's asynchronous stock checks.
 *
 * One DEALER per stock instance.  A check goes to the next instance in
 * round-robin order that has a live connection (ZMQ_IMMEDIATE: a send to an
 * instance that is not connected fails at once instead of queueing), carries
 * a corr unique to this node, and gets its own timer.  Answers are matched
 * by corr in any order; an answer after the timeout is dropped.  Many checks
 * are in flight at once.  The callback fires exactly once per check: with
 * the stock's status, STOCK_TIMEOUT, or -- synchronously, from inside
 * stock_client_check -- STOCK_UNAVAILABLE when no instance is connected. */
#ifndef ZC_CART_STOCK_CLIENT_H
#define ZC_CART_STOCK_CLIENT_H

#include <stdint.h>
#include <uv.h>

typedef struct stock_client stock_client_t;

/* status is a zc_status_t; available is the stock's unit count (0 if unknown). */
typedef void (*stock_cb)(void *arg, int status, uint32_t available);

/* endpoints: comma-separated.  NULL with err on failure. */
stock_client_t *stock_client_new(uv_loop_t *loop, void *zctx, const char *endpoints,
                                 unsigned timeout_ms, char *err, size_t errlen);
/* Drop every pending check without calling back; frees once libuv closed
 * the timers (run the loop). */
void stock_client_destroy(stock_client_t **p);
/* Ask whether `qty` units of `product` are available. */
void stock_client_check(stock_client_t *c, const char *product, uint32_t qty, uint64_t deadline,
                        stock_cb cb, void *arg);
/* Checks waiting for an answer. */
unsigned stock_client_pending(stock_client_t *c);

#endif
