/* clockshim: a per-process wall-clock offset for chaos runs (LD_PRELOAD).
 *
 * The nemesis's clock-jump fault makes one daemon's wall clock jump without
 * touching the machine's clock (which every other process shares): each
 * broker and cart node of a chaos run is started with
 *
 *     LD_PRELOAD=RUNDIR/clockshim.so  ZCART_CLOCK_OFFSET_FILE=RUNDIR/NAME/clock_offset_ms
 *
 * and this library wraps clock_gettime(), gettimeofday() and time() so that
 * CLOCK_REALTIME (and its coarse variant) read the real clock plus the
 * offset in that file: one signed integer, milliseconds.  The nemesis
 * writes the file (a jump) and writes 0 at the heal.  The file is looked at
 * again at most every 50 ms of real monotonic time, so a jump takes effect
 * within 50 ms and the hot path is one atomic load.  No file, or an
 * unreadable one, means offset 0.
 *
 * Monotonic clocks are never offset: on a real machine an NTP step or an
 * operator moves the wall clock, never CLOCK_MONOTONIC, and the daemons
 * measure leases, liveness and raft timeouts on the monotonic clock.
 *
 * Built by the chaos harness (tests/chaos/cluster.py) with the system cc,
 * -shared -fPIC -Wall -Wextra -Werror; it is test tooling, never part of a
 * zcart build. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static _Atomic int64_t offset_ms;   /* the offset now in force */
static _Atomic int64_t checked_ms;  /* monotonic ms of the last look at the file */
static _Atomic(clock_gettime_fn) real_fn; /* libc's clock_gettime */

static clock_gettime_fn real_clock_gettime(void)
{
    clock_gettime_fn f = atomic_load(&real_fn);
    if (f == NULL) {
        f = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        atomic_store(&real_fn, f);
    }
    return f;
}

/* Re-read the offset file when 50 ms have passed since the last look. */
static void refresh(void)
{
    struct timespec m;
    if (real_clock_gettime()(CLOCK_MONOTONIC_COARSE, &m) != 0)
        return;
    int64_t now = (int64_t)m.tv_sec * 1000 + m.tv_nsec / 1000000;
    int64_t last = atomic_load(&checked_ms);
    if (last != 0 && now - last < 50)
        return;
    if (!atomic_compare_exchange_strong(&checked_ms, &last, now))
        return; /* another thread is looking */
    const char *path = getenv("ZCART_CLOCK_OFFSET_FILE");
    long long v = 0;
    if (path != NULL) {
        FILE *f = fopen(path, "re");
        if (f != NULL) {
            if (fscanf(f, "%lld", &v) != 1)
                v = 0;
            fclose(f);
        }
    }
    atomic_store(&offset_ms, (int64_t)v);
}

static void shift(struct timespec *ts)
{
    refresh();
    int64_t off = atomic_load(&offset_ms);
    if (off == 0)
        return;
    int64_t ns = (int64_t)ts->tv_nsec + (off % 1000) * 1000000;
    ts->tv_sec += (time_t)(off / 1000);
    if (ns < 0) {
        ns += 1000000000;
        ts->tv_sec -= 1;
    } else if (ns >= 1000000000) {
        ns -= 1000000000;
        ts->tv_sec += 1;
    }
    ts->tv_nsec = (long)ns;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime()(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        shift(ts);
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0) { /* glibc declares tv nonnull */
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *t)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (t != NULL)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
