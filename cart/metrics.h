/* metrics: a cart node's /metrics page and readiness (lib/ops.h).
 *
 *   zcart_cart_slots                          cart slots hosted
 *   zcart_cart_replies_total{status}          CART_REPLYs sent, by status
 *   zcart_cart_stock_check_seconds            stock checks, ask to answer (histogram)
 *   zcart_cart_commit_seconds                 durable commits with changes (histogram;
 *                                             every reply waits for one)
 *   zcart_cart_commit_failures_total          commits that failed (their replies dropped)
 *   zcart_cart_dropped_frames_total           frames dropped (malformed or unexpected)
 *   zcart_cart_stock_checks_in_flight         checks waiting for the stock service
 *   zcart_cart_adds_in_flight                 adds waiting for their check
 *   zcart_cart_replicas{heard}                replicas configured, heard within
 *                                             --broker-liveness or not
 *   zcart_cart_leader_term                    term of the ready leader heard, 0 if none
 *   zcart_cart_store_used_bytes / _map_bytes  the LMDB store's use and size
 *
 * Ready: a ready leader's heartbeat (it names the term it leads in,
 * docs/protocol.md §4) came within --broker-liveness: the node is
 * connected to the leader. */
#ifndef ZC_CART_METRICS_H
#define ZC_CART_METRICS_H

#include "cart/node.h"
#include "lib/ops.h"

extern const zc_ops_fns_t cart_ops_fns; /* arg: the cart_node_t */

#endif
