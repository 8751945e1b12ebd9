/* prom: see prom.h. */
#include "lib/prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const uint64_t zc_hist_bounds_us[ZC_HIST_BUCKETS] = {
    100,     250,     500,     1000,    2500,    5000,     10000,    25000,
    50000,   100000,  250000,  500000,  1000000, 2500000,  5000000,  10000000,
};

void zc_hist_observe(zc_hist_t *h, uint64_t us)
{
    for (int i = 0; i < ZC_HIST_BUCKETS; i++)
        if (us <= zc_hist_bounds_us[i]) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum_us += us;
}

uint64_t zc_hist_quantile_le(const zc_hist_t *h, unsigned permille)
{
    if (h->count == 0)
        return 0;
    uint64_t seen = 0;
    for (int i = 0; i < ZC_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen * 1000 >= h->count * (uint64_t)permille)
            return zc_hist_bounds_us[i];
    }
    return UINT64_MAX;
}

/* Moves r's halves on to now: a half per period passed, both cleared after
 * two or more. */
static void recent_advance(zc_hist_recent_t *r, uint64_t now_us)
{
    if (r->start_us == 0 || now_us - r->start_us >= 2ull * ZC_HIST_RECENT_US) {
        memset(r->half, 0, sizeof r->half);
        r->start_us = now_us ? now_us : 1;
        return;
    }
    if (now_us - r->start_us >= ZC_HIST_RECENT_US) {
        r->cur ^= 1;
        memset(&r->half[r->cur], 0, sizeof r->half[r->cur]);
        r->start_us += ZC_HIST_RECENT_US;
    }
}

void zc_hist_recent_observe(zc_hist_recent_t *r, uint64_t now_us, uint64_t us)
{
    recent_advance(r, now_us);
    zc_hist_observe(&r->half[r->cur], us);
}

void zc_hist_recent_read(zc_hist_recent_t *r, uint64_t now_us, zc_hist_t *out)
{
    recent_advance(r, now_us);
    memset(out, 0, sizeof *out);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < ZC_HIST_BUCKETS; i++)
            out->bucket[i] += r->half[k].bucket[i];
        out->count += r->half[k].count;
        out->sum_us += r->half[k].sum_us;
    }
}

void zc_prom_init(zc_prom_t *p) { zc_wbuf_init(&p->out); }

void zc_prom_clear(zc_prom_t *p) { zc_wbuf_clear(&p->out); }

static void put(zc_prom_t *p, const char *s) { zc_wbuf_bytes(&p->out, s, strlen(s)); }

/* A label value or HELP text with \, " (label values only) and newline escaped. */
static void put_escaped(zc_prom_t *p, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(p, "\\\\");
        else if (*s == '\n')
            put(p, "\\n");
        else if (*s == '"' && quote)
            put(p, "\\\"");
        else
            zc_wbuf_u8(&p->out, (uint8_t)*s);
    }
}

void zc_prom_family(zc_prom_t *p, const char *name, const char *type, const char *help)
{
    put(p, "# HELP ");
    put(p, name);
    put(p, " ");
    put_escaped(p, help, 0);
    put(p, "\n# TYPE ");
    put(p, name);
    put(p, " ");
    put(p, type);
    put(p, "\n");
}

/* {k="v",...[,le="x"]} or nothing when there are no labels. */
static void put_labels(zc_prom_t *p, const char *const *labels, const char *le)
{
    if ((labels == NULL || labels[0] == NULL) && le == NULL)
        return;
    int n = 0;
    put(p, "{");
    for (; labels && labels[0] && labels[1]; labels += 2, n++) {
        put(p, n ? "," : "");
        put(p, labels[0]);
        put(p, "=\"");
        put_escaped(p, labels[1], 1);
        put(p, "\"");
    }
    if (le) {
        put(p, n ? ",le=\"" : "le=\"");
        put(p, le);
        put(p, "\"");
    }
    put(p, "}");
}

static void put_value(zc_prom_t *p, double v)
{
    char b[40];
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
        snprintf(b, sizeof b, " %" PRId64 "\n", (int64_t)v);
    else
        snprintf(b, sizeof b, " %.9g\n", v);
    put(p, b);
}

void zc_prom_sample(zc_prom_t *p, const char *name, const char *const *labels, double v)
{
    put(p, name);
    put_labels(p, labels, NULL);
    put_value(p, v);
}

/* name + suffix, e.g. "zcart_x_seconds" + "_bucket". */
static void put_name(zc_prom_t *p, const char *name, const char *suffix)
{
    put(p, name);
    put(p, suffix);
}

void zc_prom_hist(zc_prom_t *p, const char *name, const char *const *labels, const zc_hist_t *h)
{
    uint64_t cum = 0;
    char le[32];
    for (int i = 0; i < ZC_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        snprintf(le, sizeof le, "%g", (double)zc_hist_bounds_us[i] / 1e6);
        put_name(p, name, "_bucket");
        put_labels(p, labels, le);
        put_value(p, (double)cum);
    }
    put_name(p, name, "_bucket");
    put_labels(p, labels, "+Inf");
    put_value(p, (double)h->count);
    put_name(p, name, "_sum");
    put_labels(p, labels, NULL);
    put_value(p, (double)h->sum_us / 1e6);
    put_name(p, name, "_count");
    put_labels(p, labels, NULL);
    put_value(p, (double)h->count);
}

const char *zc_prom_text(zc_prom_t *p, size_t *len)
{
    zc_wbuf_u8(&p->out, 0);
    if (p->out.oom)
        return NULL;
    p->out.len--; /* the NUL is not part of the page */
    if (len)
        *len = p->out.len;
    return (const char *)p->out.data;
}
