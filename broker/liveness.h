/* liveness: cart liveness and breakers on the leader (see liveness.c). */
#ifndef ZC_BROKER_LIVENESS_H
#define ZC_BROKER_LIVENESS_H

#include "broker/internal.h"
#include "replication/breaker.h"

/* How often the tick runs broker__liveness_scan. */
#define LIVENESS_SCAN_MS 100

/* Propose TRIP / WAIT_OVER / PROBE_OK / PROBE_FAIL for every cart that
 * needs one (leader only). */
void broker__liveness_scan(broker_t *b, uint64_t now_us);
/* A HELLO from n (last_hello_us set): its silence deadline moves. */
void broker__liveness_heard(broker_t *b, node_info_t *n);
/* This replica became a ready leader: queue every node (those known and
 * those with registered carts) at a full --cart-liveness window. */
void broker__liveness_start(broker_t *b);
/* A forwarded operation on cart ended: ok false for a timeout or a failure
 * inside the cart (not for a KO the cart decided).  probe: it was admitted
 * as a HALF_OPEN probe. */
/* The outcome of an operation on cart.  probe: it was admitted as a probe
 * while the breaker was HALF_OPEN since probe_since_ms; its outcome is
 * ignored once the breaker has moved on (a probe answers only the period
 * that admitted it). */
void broker__liveness_op_result(broker_t *b, const char *cart, bool ok, bool probe,
                                uint64_t probe_since_ms);
/* A RESET_DONE of cart `id` (its record `rec`, at the RESET_DONE's
 * generation) arrived: if it answers the RESET probe of a free HALF_OPEN
 * cart, propose PROBE_OK (broker__reset_done calls it). */
void broker__liveness_reset_done(broker_t *b, const char *id, const zc_cart_rec_t *rec);
/* Propose one BREAKER event for cart.  With cb NULL, at most one such
 * proposal per cart is in flight and the outcome is only logged (from: the
 * state it is proposed from); with cb (admin, probes) the caller gets the
 * result and no bookkeeping is done. */
void broker__liveness_propose(broker_t *b, const char *cart, uint8_t from, int ev, int why,
                              zc_propose_cb cb, void *arg);
/* The breaker tunables from the flags. */
zc_brk_policy_t broker__liveness_policy(const broker_t *b);
/* Leadership lost: forget failure counts and pending proposals. */
/* Forget what the leader keeps about one cart (it was unregistered). */
void broker__liveness_forget_cart(broker_t *b, const char *cart);
void broker__liveness_forget_all(broker_t *b);
void broker__liveness_destroy(broker_t *b);

#endif
