/* log: levelled log lines on stderr, one line per event.
 *
 *   2026-11-23T10:00:00.123Z broker1 INFO  assigned cart1.2 gen 7 to 3fa0...
 *
 * The process name is set once at start; the level filters at the call site
 * so a disabled debug line costs one comparison. */
#ifndef ZC_LIB_LOG_H
#define ZC_LIB_LOG_H

#include <stdbool.h>

typedef enum { ZC_LOG_DEBUG = 0, ZC_LOG_INFO, ZC_LOG_WARN, ZC_LOG_ERROR } zc_log_level_t;

extern zc_log_level_t zc_log_threshold;

/* Name printed on every line (copied, at most 31 bytes). */
void zc_log_set_name(const char *name);
/* Parse "debug", "info", "warn" or "error"; false if unknown. */
bool zc_log_parse_level(const char *s, zc_log_level_t *out);
void zc_log_emit(zc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define zc_log_at(lvl, ...) \
    do { if ((lvl) >= zc_log_threshold) zc_log_emit((lvl), __VA_ARGS__); } while (0)
#define zc_debug(...) zc_log_at(ZC_LOG_DEBUG, __VA_ARGS__)
#define zc_info(...) zc_log_at(ZC_LOG_INFO, __VA_ARGS__)
#define zc_warn(...) zc_log_at(ZC_LOG_WARN, __VA_ARGS__)
#define zc_error(...) zc_log_at(ZC_LOG_ERROR, __VA_ARGS__)

/* Rate limit for a counted event that a peer can repeat at will (a junk
 * frame, a refused key): log its first `first`, then every 1000th, so a
 * flood never becomes a flood of log lines.  n counts the events so far. */
static inline bool zc_log_sampled(unsigned long long n, unsigned long long first)
{
    return n <= first || n % 1000 == 0;
}

#endif
