/* stallwatch: see stallwatch.h.
 *
 * Time comes from uv_hrtime, not uv_now: uv_now is the loop's cached time,
 * taken once per iteration, which would hide a stall inside the very
 * iteration the timer runs in. */
#include "lib/stallwatch.h"

#include <stdbool.h>
#include <stdlib.h>

struct zc_stallwatch {
    uv_timer_t timer;           /* the repeating timer (must be first: close frees it) */
    uint64_t period_us;         /* its period */
    uint64_t last_ns;           /* uv_hrtime when it last fired (or started) */
    uint64_t window_start_ns;   /* start of the current window */
    uint64_t window_max_us;     /* the longest stall in the current window */
    uint64_t prev_window_max_us; /* ... and in the previous one */
    zc_stallwatch_stats_t stats; /* max_us, slow, ticks (recent_max_us computed on read) */
};

static void on_tick(uv_timer_t *t)
{
    zc_stallwatch_t *w = t->data;
    uint64_t now = uv_hrtime();
    uint64_t gap_us = (now - w->last_ns) / 1000u;
    uint64_t stall = gap_us > w->period_us ? gap_us - w->period_us : 0;
    w->last_ns = now;
    w->stats.ticks++;
    if (now - w->window_start_ns >= (uint64_t)ZC_STALLWATCH_WINDOW_MS * 1000000u) {
        /* A window passed; if more than one did, the previous was quiet. */
        bool one = now - w->window_start_ns < 2ull * ZC_STALLWATCH_WINDOW_MS * 1000000u;
        w->prev_window_max_us = one ? w->window_max_us : 0;
        w->window_max_us = 0;
        w->window_start_ns = now;
    }
    if (stall > w->window_max_us)
        w->window_max_us = stall;
    if (stall > w->stats.max_us)
        w->stats.max_us = stall;
    if (stall > ZC_STALLWATCH_SLOW_US)
        w->stats.slow++;
}

zc_stallwatch_t *zc_stallwatch_new(uv_loop_t *loop, unsigned period_ms)
{
    zc_stallwatch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    if (period_ms == 0)
        period_ms = 1;
    w->period_us = (uint64_t)period_ms * 1000u;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->last_ns = w->window_start_ns = uv_hrtime();
    uv_timer_start(&w->timer, on_tick, period_ms, period_ms);
    uv_unref((uv_handle_t *)&w->timer);
    return w;
}

void zc_stallwatch_stats(const zc_stallwatch_t *w, zc_stallwatch_stats_t *out)
{
    *out = w->stats;
    out->recent_max_us =
        w->window_max_us > w->prev_window_max_us ? w->window_max_us : w->prev_window_max_us;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void zc_stallwatch_destroy(zc_stallwatch_t **p)
{
    zc_stallwatch_t *w = *p;
    if (w == NULL)
        return;
    *p = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}
