/* metrics: the stock service's /metrics page and readiness (lib/ops.h).
 *
 *   zcart_stock_checks_total{status}   checks answered, by status
 *   zcart_stock_malformed_frames_total frames that were not a CHECK
 *   zcart_stock_forbidden_total        checks dropped: the key is not a cart's
 *   zcart_stock_delayed_answers        answers waiting for their --delay
 *   zcart_stock_products               products in the inventory
 *
 * Stock is ready as soon as it serves: it has no peer to wait for. */
#ifndef ZC_STOCK_METRICS_H
#define ZC_STOCK_METRICS_H

#include "lib/ops.h"
#include "stock/inventory.h"
#include "stock/server.h"

/* What the page reads; owned by main. */
typedef struct {
    server_t *srv;      /* the ROUTER's counters */
    inventory_t *inv;   /* the product count */
} stock_metrics_t;

extern const zc_ops_fns_t stock_ops_fns; /* arg: a stock_metrics_t */

#endif
