/* metrics: see metrics.h. */
#include "stock/metrics.h"

#include <stdio.h>

/* The statuses a CHECK_REPLY can carry (docs/protocol.md §5). */
static const int check_statuses[] = {ZC_OK,          ZC_OUT_OF_STOCK, ZC_UNKNOWN_PRODUCT,
                                     ZC_EXPIRED,     ZC_BAD_REQUEST,  ZC_INTERNAL};

static void write_metrics(void *arg, zc_prom_t *p)
{
    stock_metrics_t *m = arg;
    server_stats_t st;
    server_stats(m->srv, &st);
    zc_prom_family(p, "zcart_stock_checks_total", "counter", "Stock checks answered, by status.");
    for (size_t i = 0; i < sizeof check_statuses / sizeof check_statuses[0]; i++) {
        int s = check_statuses[i];
        zc_prom_sample(p, "zcart_stock_checks_total",
                       (const char *[]){"status", zc_status_name(s), NULL},
                       (double)st.by_status[s]);
    }
    zc_prom_family(p, "zcart_stock_malformed_frames_total", "counter",
                   "Frames that were not a well-formed CHECK.");
    zc_prom_sample(p, "zcart_stock_malformed_frames_total", NULL, (double)st.malformed);
    zc_prom_family(p, "zcart_stock_forbidden_total", "counter",
                   "Checks dropped because the asking key is not a cart node's.");
    zc_prom_sample(p, "zcart_stock_forbidden_total", NULL, (double)st.forbidden);
    zc_prom_family(p, "zcart_stock_delayed_answers", "gauge",
                   "Answers waiting for their --delay now.");
    zc_prom_sample(p, "zcart_stock_delayed_answers", NULL, (double)st.delayed);
    zc_prom_family(p, "zcart_stock_products", "gauge", "Products in the inventory.");
    zc_prom_sample(p, "zcart_stock_products", NULL, (double)inventory_count(m->inv));
}

static bool is_ready(void *arg, char *why, size_t cap)
{
    (void)arg;
    (void)why;
    (void)cap;
    return true; /* serving is ready: stock waits for no peer */
}

const zc_ops_fns_t stock_ops_fns = {write_metrics, is_ready};
