/* prom: the Prometheus text exposition format (version 0.0.4), written.
 *
 * A daemon's /metrics page is built fresh on every scrape from the counters
 * the daemon already keeps, so this module holds no registry: the caller
 * writes one family at a time --
 *
 *   zc_prom_t p; zc_prom_init(&p);
 *   zc_prom_family(&p, "zcart_requests_total", "counter", "Client requests answered.");
 *   zc_prom_sample(&p, "zcart_requests_total", (const char *[]){"op", "add", NULL}, 42);
 *   ... zc_prom_text(&p) ... zc_prom_clear(&p);
 *
 * Label values are escaped (backslash, double quote, newline), so names a
 * peer chose (cart node names) cannot break the page.  Latencies are kept
 * in a zc_hist_t, fixed buckets from 100 µs to 10 s, and written in seconds
 * as a Prometheus histogram (_bucket{le=...}, _sum, _count). */
#ifndef ZC_LIB_PROM_H
#define ZC_LIB_PROM_H

#include <stdint.h>

#include "lib/buf.h"

/* Upper bounds of a zc_hist_t's buckets, in microseconds (+Inf is implied). */
#define ZC_HIST_BUCKETS 16
extern const uint64_t zc_hist_bounds_us[ZC_HIST_BUCKETS];

typedef struct {
    uint64_t bucket[ZC_HIST_BUCKETS]; /* observations <= bound i (not cumulative) */
    uint64_t count;                   /* all observations, +Inf included */
    uint64_t sum_us;                  /* their sum, microseconds */
} zc_hist_t;

/* Record one observation of `us` microseconds. */
void zc_hist_observe(zc_hist_t *h, uint64_t us);
/* The upper bound (µs) of the bucket holding the q-quantile of h, q given in
 * permille (500: the median, 990: p99); 0 when h is empty, UINT64_MAX when
 * it lies past the last bound. */
uint64_t zc_hist_quantile_le(const zc_hist_t *h, unsigned permille);

/* The recent past as a histogram: two halves of ZC_HIST_RECENT_US each, the
 * older dropped as time moves on, so a read covers the last 5 to 10 s.  What
 * a dashboard or STATUS shows as "now", where the all-time zc_hist_t (for
 * Prometheus, which takes its own differences) would show history. */
#define ZC_HIST_RECENT_US 5000000u
typedef struct {
    zc_hist_t half[2];   /* [cur]: since start_us; [!cur]: the period before */
    int cur;             /* the half being filled */
    uint64_t start_us;   /* monotonic start of half[cur]; 0 before the first use */
} zc_hist_recent_t;

void zc_hist_recent_observe(zc_hist_recent_t *r, uint64_t now_us, uint64_t us);
/* Both halves added up into *out, after dropping what is older than 2 periods. */
void zc_hist_recent_read(zc_hist_recent_t *r, uint64_t now_us, zc_hist_t *out);

typedef struct {
    zc_wbuf_t out; /* the page so far, NUL-terminated by zc_prom_text */
} zc_prom_t;

void zc_prom_init(zc_prom_t *p);
void zc_prom_clear(zc_prom_t *p);
/* The # HELP and # TYPE lines of one family; type is "counter", "gauge" or
 * "histogram".  Write every sample of the family right after it. */
void zc_prom_family(zc_prom_t *p, const char *name, const char *type, const char *help);
/* One sample line.  labels: NULL, or key, value, key, value, ..., NULL. */
void zc_prom_sample(zc_prom_t *p, const char *name, const char *const *labels, double v);
/* A whole histogram sample set (no family line): name_bucket{labels,le=},
 * name_sum and name_count, in seconds. */
void zc_prom_hist(zc_prom_t *p, const char *name, const char *const *labels, const zc_hist_t *h);
/* The page so far (valid until the next write); NULL if memory ran out. */
const char *zc_prom_text(zc_prom_t *p, size_t *len);

#endif
