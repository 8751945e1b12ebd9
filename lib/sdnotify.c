/* sdnotify: see sdnotify.h. */
#include "lib/sdnotify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

static uv_timer_t watchdog;  /* the pings; one per process */
static bool watchdog_on;     /* the timer was started */

static void ping(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

static void notify_with_status(const char *head, const char *fmt, va_list ap)
{
    char status[256];
    vsnprintf(status, sizeof status, fmt, ap);
    sd_notifyf(0, "%sSTATUS=%s", head, status);
}

void zc_sd_ready(uv_loop_t *loop, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_with_status("READY=1\n", fmt, ap);
    va_end(ap);
    uint64_t usec = 0;
    if (!watchdog_on && sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uv_timer_init(loop, &watchdog);
        uv_timer_start(&watchdog, ping, 0, usec / 2000); /* ms, half the interval */
        uv_unref((uv_handle_t *)&watchdog);            /* never keeps the loop alive */
        watchdog_on = true;
    }
}

void zc_sd_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_with_status("", fmt, ap);
    va_end(ap);
}

void zc_sd_stopping(void)
{
    sd_notify(0, "STOPPING=1");
    if (watchdog_on) {
        watchdog_on = false;
        uv_close((uv_handle_t *)&watchdog, NULL);
    }
}
