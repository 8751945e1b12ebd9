/* stallwatch: how long an event loop stops turning -- its stalls.
 *
 * A loop that runs one long callback (a big computation, a blocking
 * syscall) runs nothing else meanwhile: no timer, no socket.  A stallwatch
 * is a repeating libuv timer of a short period P that measures its own
 * lateness: each time it fires, the gap since it last fired minus P is how
 * long the loop was kept from it (a stall, to within P).  It keeps the
 * largest since it was created, the largest of the recent past (the
 * current and the previous window of ZC_STALLWATCH_WINDOW_MS, so a reader
 * polling at least that often sees every stall) and a count of stalls above
 * ZC_STALLWATCH_SLOW_US.  The timer is unreferenced: it never keeps a loop
 * alive by itself.
 *
 * Domain-free; single-threaded (the loop's thread).  Lifetime:
 * zc_stallwatch_new starts it; zc_stallwatch_destroy stops it, nulls the
 * pointer, and frees it once the loop has closed the timer (so the loop
 * must run once more before uv_loop_close). */
#ifndef ZC_LIB_STALLWATCH_H
#define ZC_LIB_STALLWATCH_H

#include <stdint.h>
#include <uv.h>

#define ZC_STALLWATCH_WINDOW_MS 5000u
#define ZC_STALLWATCH_SLOW_US 50000u

typedef struct zc_stallwatch zc_stallwatch_t;

typedef struct {
    uint64_t max_us;        /* the longest stall since new */
    uint64_t recent_max_us; /* the longest in the current and previous window */
    uint64_t slow;          /* stalls longer than ZC_STALLWATCH_SLOW_US */
    uint64_t ticks;         /* times the timer fired */
} zc_stallwatch_stats_t;

/* Start watching loop with a timer of period_ms (>= 1).  NULL when out of
 * memory. */
zc_stallwatch_t *zc_stallwatch_new(uv_loop_t *loop, unsigned period_ms);
void zc_stallwatch_stats(const zc_stallwatch_t *w, zc_stallwatch_stats_t *out);
void zc_stallwatch_destroy(zc_stallwatch_t **p);

#endif
