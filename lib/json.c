/* json: see json.h. */
#include "lib/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void zc_json_init(zc_json_t *j)
{
    memset(j, 0, sizeof *j);
    zc_wbuf_init(&j->out);
    j->first[0] = true;
}

void zc_json_clear(zc_json_t *j) { zc_wbuf_clear(&j->out); }

static void put(zc_json_t *j, const char *s) { zc_wbuf_bytes(&j->out, s, strlen(s)); }

/* Separator before a value or key at the current level. */
static void sep(zc_json_t *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (!j->first[j->depth])
        put(j, ",");
    j->first[j->depth] = false;
}

static void open(zc_json_t *j, const char *c, char closer)
{
    sep(j);
    put(j, c);
    if (j->depth < 15)
        j->depth++;
    j->first[j->depth] = true;
    j->closer[j->depth] = closer;
}

void zc_json_obj(zc_json_t *j) { open(j, "{", '}'); }
void zc_json_arr(zc_json_t *j) { open(j, "[", ']'); }

void zc_json_end(zc_json_t *j)
{
    if (j->depth == 0)
        return;
    char c[2] = {j->closer[j->depth], 0};
    put(j, c);
    j->depth--;
}

static void quoted(zc_json_t *j, const char *s)
{
    put(j, "\"");
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': put(j, "\\\""); break;
        case '\\': put(j, "\\\\"); break;
        case '\n': put(j, "\\n"); break;
        case '\r': put(j, "\\r"); break;
        case '\t': put(j, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                put(j, esc);
            } else {
                zc_wbuf_u8(&j->out, *p);
            }
        }
    }
    put(j, "\"");
}

void zc_json_key(zc_json_t *j, const char *k)
{
    sep(j);
    quoted(j, k);
    put(j, ":");
    j->after_key = true;
}

void zc_json_string(zc_json_t *j, const char *s)
{
    sep(j);
    quoted(j, s);
}

void zc_json_u64(zc_json_t *j, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    sep(j);
    put(j, b);
}

void zc_json_i64(zc_json_t *j, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    sep(j);
    put(j, b);
}

void zc_json_double(zc_json_t *j, double v)
{
    char b[64];
    snprintf(b, sizeof b, "%.6g", v);
    sep(j);
    put(j, b);
}

void zc_json_bool(zc_json_t *j, bool v)
{
    sep(j);
    put(j, v ? "true" : "false");
}

void zc_json_null(zc_json_t *j)
{
    sep(j);
    put(j, "null");
}

void zc_json_kstr(zc_json_t *j, const char *k, const char *s) { zc_json_key(j, k); zc_json_string(j, s); }
void zc_json_ku64(zc_json_t *j, const char *k, uint64_t v) { zc_json_key(j, k); zc_json_u64(j, v); }
void zc_json_kbool(zc_json_t *j, const char *k, bool v) { zc_json_key(j, k); zc_json_bool(j, v); }

const char *zc_json_str(zc_json_t *j)
{
    zc_wbuf_u8(&j->out, 0);
    j->out.len--;
    return (const char *)j->out.data;
}
