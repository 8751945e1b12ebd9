/* sdnotify: tell systemd how a daemon is doing (sd_notify(3)).
 *
 * Under a unit with Type=notify, systemd waits for READY=1 before it counts
 * the service as started (so `systemctl start` of a replica returns once it
 * serves) and shows the last STATUS= line in `systemctl status`.  With
 * WatchdogSec= set, the daemon must send WATCHDOG=1 more often than that or
 * be killed and restarted: zc_sd_start sends it from a timer on the daemon's
 * own loop, at half the interval systemd asks for, so a wedged loop -- the
 * one failure a process that is still alive cannot report -- stops the
 * pings.  Outside systemd (no NOTIFY_SOCKET) every call does nothing. */
#ifndef ZC_LIB_SDNOTIFY_H
#define ZC_LIB_SDNOTIFY_H

#include <uv.h>

/* READY=1 with a status line, and start the watchdog pings if systemd
 * asked for them (WATCHDOG_USEC).  Call once, when the daemon serves. */
void zc_sd_ready(uv_loop_t *loop, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A new STATUS= line (e.g. a replica's role). */
void zc_sd_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STOPPING=1 and stop the watchdog timer (its handle closes on the loop). */
void zc_sd_stopping(void);

#endif
