/* stock_client: a cart node's asynchronous stock checks, spread over several
 * stock instances, with a circuit breaker per instance.
 *
 * One DEALER per stock instance, each with its own breaker
 * (cart/stock_breaker.h).  Every check carries a corr unique to this node
 * and gets its own timer; answers are matched by corr in any order, and an
 * answer after the timeout is dropped.  Many checks are in flight at once.
 *
 * Where a check goes.  Starting at a round-robin cursor, the check goes to
 * the first instance that is connected (ZMQ_IMMEDIATE: a send to an
 * instance that is not connected fails at once instead of queueing) and
 * whose breaker is CLOSED.  If there is none, it goes to an instance whose
 * breaker admits its one probe (OPEN with the wait over, or HALF_OPEN with
 * no probe out): then the check is the probe.  If there is none either,
 * the check is answered STOCK_UNAVAILABLE at once -- synchronously, from
 * inside stock_client_check -- with a detail naming each instance's state
 * ("breaker open (N ms left)", "probe out", "not connected").  An open
 * breaker therefore costs nothing: no send, no timer, no wait.
 *
 * Start-up.  ZeroMQ connects asynchronously, so a node's first checks may
 * find no instance connected *yet*.  Until some instance has taken a check
 * (and for at most one check timeout after creation), such a check is
 * retried every few ms within its own timeout instead of being answered
 * STOCK_UNAVAILABLE; after that, "not connected" means gone and fails fast.
 *
 * What counts against an instance.  A check sent to it that times out, or
 * that it answers INTERNAL, is a failure of that instance; any other answer
 * in time is a success.  K failures in a row open its breaker; the breaker
 * stamps every check with a ticket so results of checks sent before it last
 * moved are ignored.  Every breaker move is logged once (warn when it opens,
 * info when it half-opens or closes) with the instance's endpoint.
 *
 * Probes cost users nothing while a healthy instance exists.  When a check
 * is taken by a CLOSED instance and another instance's breaker admits a
 * probe, that instance gets a copy of the check as its probe: its own corr,
 * its own timer, no callback; its answer only moves that breaker.  With no
 * healthy instance, the user's check itself is the probe (and may time out).
 *
 * No retry after a timeout (the failover choice).  A timed-out check is
 * answered STOCK_TIMEOUT; it is not sent again to another instance.  Its
 * timer is the check's whole budget (--stock-timeout), which must stay below
 * the broker's --cart-timeout so that the cart answers before the broker
 * gives up on the request; a retry inside that budget would mean splitting
 * it, i.e. giving up on every slow but healthy instance sooner.  Failover
 * happens before the send instead: a dead instance (connection gone) is
 * skipped at once, and a hung one (connected, silent) costs at most K
 * timeouts before its breaker opens and checks go to the others.
 *
 * The callback fires exactly once per check (never for a probe copy): with
 * the stock's status, STOCK_TIMEOUT, STOCK_UNAVAILABLE, or INTERNAL (out of
 * memory). */
#ifndef ZC_CART_STOCK_CLIENT_H
#define ZC_CART_STOCK_CLIENT_H

#include <stdint.h>
#include <uv.h>

#include "cart/stock_breaker.h"

typedef struct stock_client stock_client_t;

/* status is a zc_status_t; available is the stock's unit count (0 if
 * unknown); detail explains STOCK_TIMEOUT, STOCK_UNAVAILABLE and INTERNAL
 * (NULL otherwise; valid only during the call). */
typedef void (*stock_cb)(void *arg, int status, uint32_t available, const char *detail);

typedef struct {
    const char *endpoints;          /* comma-separated stock endpoints (at most 16) */
    unsigned timeout_ms;            /* per-check timeout -> STOCK_TIMEOUT */
    stock_breaker_policy_t breaker; /* every instance's breaker */
    const struct zc_sec *sec;       /* CurveZMQ keys (lib/zsec.h); NULL: plain sockets
                                       (unit tests only) */
    const char *stock_key;          /* the stock service's public key, z85 (secure) */
} stock_client_config_t;

/* NULL with err on failure (strings in cfg are copied). */
stock_client_t *stock_client_new(uv_loop_t *loop, void *zctx, const stock_client_config_t *cfg,
                                 char *err, size_t errlen);
/* Drop every pending check without calling back; frees once libuv closed
 * the timers (run the loop). */
void stock_client_destroy(stock_client_t **p);
/* Ask whether `qty` units of `product` are available; deadline travels with
 * the check (ms since the Unix epoch, 0 = none). */
void stock_client_check(stock_client_t *c, const char *product, uint32_t qty, uint64_t deadline,
                        stock_cb cb, void *arg);
/* Checks waiting for an answer (probe copies included). */
unsigned stock_client_pending(stock_client_t *c);

#endif
