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

void zc_json_kstr(zc_json_t *j, const char *k, const char *s)
{
    zc_json_key(j, k);
    zc_json_string(j, s);
}
void zc_json_ku64(zc_json_t *j, const char *k, uint64_t v)
{
    zc_json_key(j, k);
    zc_json_u64(j, v);
}
void zc_json_kbool(zc_json_t *j, const char *k, bool v)
{
    zc_json_key(j, k);
    zc_json_bool(j, v);
}

const char *zc_json_str(zc_json_t *j)
{
    zc_wbuf_u8(&j->out, 0);
    j->out.len--;
    return (const char *)j->out.data;
}

/* --- reading --- */

typedef struct {
    const char *p, *end, *start; /* cursor, end, text start */
    char *why;                   /* where to say what went wrong */
    size_t whylen;               /* its room */
} rd_t;

static int rd_fail(rd_t *r, const char *what)
{
    snprintf(r->why, r->whylen, "%s at offset %zu", what, (size_t)(r->p - r->start));
    return -1;
}

static void rd_ws(rd_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A string into out (cap bytes with the NUL); \u escapes as UTF-8. */
static int rd_string(rd_t *r, char *out, size_t cap)
{
    size_t n = 0;
    if (r->p >= r->end || *r->p != '"')
        return rd_fail(r, "expected a string");
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        unsigned c = (unsigned char)*r->p++;
        if (c < 0x20)
            return rd_fail(r, "control character in a string");
        if (c == '\\') {
            if (r->p >= r->end)
                break;
            char e = *r->p++;
            const char *map = strchr("\"\\/bfnrt", e);
            if (map) {
                static const char to[] = "\"\\/\b\f\n\r\t";
                c = (unsigned char)to[map - "\"\\/bfnrt"];
            } else if (e == 'u' && r->end - r->p >= 4) {
                int v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(r->p[i]);
                    if (h < 0)
                        return rd_fail(r, "bad \\u escape");
                    v = v * 16 + h;
                }
                r->p += 4;
                if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
                    return rd_fail(r, "\\u0000 or a surrogate in a string");
                char u[3];
                size_t k = 0;
                if (v < 0x80) {
                    u[k++] = (char)v;
                } else if (v < 0x800) {
                    u[k++] = (char)(0xC0 | (v >> 6));
                    u[k++] = (char)(0x80 | (v & 0x3F));
                } else {
                    u[k++] = (char)(0xE0 | (v >> 12));
                    u[k++] = (char)(0x80 | ((v >> 6) & 0x3F));
                    u[k++] = (char)(0x80 | (v & 0x3F));
                }
                if (n + k >= cap)
                    return rd_fail(r, "string too long");
                memcpy(out + n, u, k);
                n += k;
                continue;
            } else {
                return rd_fail(r, "bad escape in a string");
            }
        }
        if (n + 1 >= cap)
            return rd_fail(r, "string too long");
        out[n++] = (char)c;
    }
    if (r->p >= r->end)
        return rd_fail(r, "unterminated string");
    r->p++;
    out[n] = 0;
    return 0;
}

static int rd_value(rd_t *r, zc_json_member_t *m)
{
    if (r->p >= r->end)
        return rd_fail(r, "expected a value");
    char c = *r->p;
    if (c == '"') {
        m->kind = ZC_JSON_STRING;
        return rd_string(r, m->str, sizeof m->str);
    }
    static const struct {
        const char *word;
        zc_json_kind_t kind;
        int64_t v;
    } words[] = {{"true", ZC_JSON_BOOL, 1}, {"false", ZC_JSON_BOOL, 0}, {"null", ZC_JSON_NULL, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t wl = strlen(words[i].word);
        if ((size_t)(r->end - r->p) >= wl && memcmp(r->p, words[i].word, wl) == 0) {
            r->p += wl;
            m->kind = words[i].kind;
            m->num = words[i].v;
            return 0;
        }
    }
    if (c == '{' || c == '[')
        return rd_fail(r, "nested values are not accepted");
    bool neg = c == '-';
    const char *d = r->p + neg;
    if (d >= r->end || *d < '0' || *d > '9' ||
        (*d == '0' && d + 1 < r->end && d[1] >= '0' && d[1] <= '9'))
        return rd_fail(r, "expected a value");
    uint64_t v = 0;
    for (; d < r->end && *d >= '0' && *d <= '9'; d++) {
        if (v > (UINT64_MAX - 9) / 10 || v * 10 + (uint64_t)(*d - '0') > (uint64_t)INT64_MAX)
            return rd_fail(r, "integer out of range");
        v = v * 10 + (uint64_t)(*d - '0');
    }
    if (d < r->end && (*d == '.' || *d == 'e' || *d == 'E'))
        return rd_fail(r, "only integers are accepted");
    r->p = d;
    m->kind = ZC_JSON_INT;
    m->num = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int zc_json_read_flat(const char *text, size_t len, zc_json_member_t *out, size_t max, size_t *n,
                      char *why, size_t whylen)
{
    rd_t r = {text, text + len, text, why, whylen};
    *n = 0;
    rd_ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return rd_fail(&r, "expected a JSON object");
    r.p++;
    rd_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            zc_json_member_t m;
            memset(&m, 0, sizeof m);
            rd_ws(&r);
            if (rd_string(&r, m.key, sizeof m.key) != 0)
                return -1;
            if (zc_json_member(out, *n, m.key))
                return rd_fail(&r, "duplicate member");
            rd_ws(&r);
            if (r.p >= r.end || *r.p != ':')
                return rd_fail(&r, "expected ':'");
            r.p++;
            rd_ws(&r);
            if (rd_value(&r, &m) != 0)
                return -1;
            if (*n == max)
                return rd_fail(&r, "too many members");
            out[(*n)++] = m;
            rd_ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            if (r.p < r.end && *r.p == '}') {
                r.p++;
                break;
            }
            return rd_fail(&r, "expected ',' or '}'");
        }
    }
    rd_ws(&r);
    if (r.p != r.end)
        return rd_fail(&r, "text after the object");
    return 0;
}

const zc_json_member_t *zc_json_member(const zc_json_member_t *m, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].key, key) == 0)
            return &m[i];
    return NULL;
}
