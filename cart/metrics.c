/* metrics: see metrics.h. */
#include "cart/metrics.h"

#include <stdio.h>

/* The statuses a CART_REPLY can carry (docs/protocol.md §4). */
static const int reply_statuses[] = {ZC_OK,           ZC_OUT_OF_STOCK,  ZC_UNKNOWN_PRODUCT,
                                     ZC_NOT_IN_CART,  ZC_FENCED,        ZC_EXPIRED,
                                     ZC_BAD_REQUEST,  ZC_INTERNAL,      ZC_STOCK_TIMEOUT,  ZC_STOCK_UNAVAILABLE,
                                     ZC_STORAGE_FULL};

static void gauge(zc_prom_t *p, const char *name, const char *help, double v)
{
    zc_prom_family(p, name, "gauge", help);
    zc_prom_sample(p, name, NULL, v);
}

static void counter(zc_prom_t *p, const char *name, const char *help, double v)
{
    zc_prom_family(p, name, "counter", help);
    zc_prom_sample(p, name, NULL, v);
}

static void write_metrics(void *arg, zc_prom_t *p)
{
    cart_stats_t st;
    cart_node_stats(arg, &st);
    gauge(p, "zcart_cart_slots", "Cart slots hosted by this node.", st.slots);
    zc_prom_family(p, "zcart_cart_replies_total", "counter", "CART_REPLYs sent, by status.");
    for (size_t i = 0; i < sizeof reply_statuses / sizeof reply_statuses[0]; i++)
        zc_prom_sample(p, "zcart_cart_replies_total",
                       (const char *[]){"status", zc_status_name(reply_statuses[i]), NULL},
                       (double)st.replies[reply_statuses[i]]);
    zc_prom_family(p, "zcart_cart_stock_check_seconds", "histogram",
                   "Stock checks of adds, from asking to the answer (or the timeout).");
    zc_prom_hist(p, "zcart_cart_stock_check_seconds", NULL, &st.stock_lat);
    zc_prom_family(p, "zcart_cart_commit_seconds", "histogram",
                   "Durable commits that had changes (a write-ahead log append and its "
                   "fdatasync); every reply waits for one.");
    zc_prom_hist(p, "zcart_cart_commit_seconds", NULL, &st.commit_lat);
    counter(p, "zcart_cart_commit_failures_total",
            "Durable commits that failed; their replies were dropped.", (double)st.commit_failures);
    zc_prom_family(p, "zcart_cart_checkpoint_seconds", "histogram",
                   "LMDB commits of what the write-ahead log holds (full sync), then the log "
                   "rewound; off the replies' path.");
    zc_prom_hist(p, "zcart_cart_checkpoint_seconds", NULL, &st.store.checkpoint_lat);
    counter(p, "zcart_cart_checkpoint_failures_total",
            "Checkpoints whose LMDB commit failed; the log still held every change.",
            (double)st.store.checkpoint_failures);
    gauge(p, "zcart_cart_log_used_bytes", "Bytes of the write-ahead log since the last checkpoint.",
          (double)st.store.log_used);
    gauge(p, "zcart_cart_log_size_bytes", "Size of the write-ahead log file.",
          (double)st.store.log_size);
    gauge(p, "zcart_cart_log_replayed_records",
          "Write-ahead log records replayed when the store was opened (an unclean stop).",
          (double)st.store.replayed_records);
    counter(p, "zcart_cart_dropped_frames_total", "Frames from replicas dropped unread.",
            (double)st.dropped);
    gauge(p, "zcart_cart_stock_checks_in_flight", "Stock checks waiting for an answer.",
          st.stock_in_flight);
    gauge(p, "zcart_cart_adds_in_flight", "Adds waiting for their stock check.",
          (double)st.adds_in_flight);
    zc_prom_family(p, "zcart_cart_replicas", "gauge",
                   "Broker replicas configured, by whether they were heard within --broker-liveness.");
    zc_prom_sample(p, "zcart_cart_replicas", (const char *[]){"heard", "yes", NULL},
                   st.replicas_heard);
    zc_prom_sample(p, "zcart_cart_replicas", (const char *[]){"heard", "no", NULL},
                   st.replicas - st.replicas_heard);
    gauge(p, "zcart_cart_leader_term", "Term of the ready leader heard within --broker-liveness, "
          "0 if none (readiness).", (double)st.leader_term);
    gauge(p, "zcart_cart_store_used_bytes", "Bytes of the LMDB store in use.", (double)st.store_used);
    gauge(p, "zcart_cart_store_map_bytes", "Size of the LMDB store's map (--map-size).",
          (double)st.store_map);
}

static bool is_ready(void *arg, char *why, size_t cap)
{
    cart_stats_t st;
    cart_node_stats(arg, &st);
    if (st.leader_term != 0)
        return true;
    snprintf(why, cap, "no heartbeat from a ready leader within --broker-liveness (heard %u of %u "
             "replicas)", st.replicas_heard, st.replicas);
    return false;
}

const zc_ops_fns_t cart_ops_fns = {write_metrics, is_ready};
