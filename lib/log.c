/* log: see log.h. */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

zc_log_level_t zc_log_threshold = ZC_LOG_INFO;
static char log_name[32] = "zcart";

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void zc_log_set_name(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name);
}

bool zc_log_parse_level(const char *s, zc_log_level_t *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (zc_log_level_t)i;
            return true;
        }
    }
    return false;
}

void zc_log_emit(zc_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_name, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line so concurrent processes sharing a file interleave by line. */
    fprintf(stderr, "%s\n", line);
}
