/* buf: see buf.h.  Big-endian ("network order") everywhere. */
#include "lib/buf.h"

#include <stdlib.h>
#include <string.h>

void zc_wbuf_init(zc_wbuf_t *w) { memset(w, 0, sizeof *w); }

void zc_wbuf_clear(zc_wbuf_t *w)
{
    free(w->data);
    zc_wbuf_init(w);
}

void zc_wbuf_reset(zc_wbuf_t *w)
{
    w->len = 0;
    w->oom = false;
}

uint8_t *zc_wbuf_take(zc_wbuf_t *w, size_t *len)
{
    uint8_t *p = w->data;
    *len = w->len;
    zc_wbuf_init(w);
    return p;
}

static bool reserve(zc_wbuf_t *w, size_t n)
{
    if (w->oom)
        return false;
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *p = realloc(w->data, cap);
    if (p == NULL) {
        w->oom = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void zc_wbuf_bytes(zc_wbuf_t *w, const void *p, size_t n)
{
    if (n == 0 || !reserve(w, n))
        return;
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

void zc_wbuf_u8(zc_wbuf_t *w, uint8_t v) { zc_wbuf_bytes(w, &v, 1); }

void zc_wbuf_u16(zc_wbuf_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    zc_wbuf_bytes(w, b, 2);
}

void zc_wbuf_u32(zc_wbuf_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    zc_wbuf_bytes(w, b, 4);
}

void zc_wbuf_u64(zc_wbuf_t *w, uint64_t v)
{
    zc_wbuf_u32(w, (uint32_t)(v >> 32));
    zc_wbuf_u32(w, (uint32_t)v);
}

void zc_wbuf_str(zc_wbuf_t *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 255)
        n = 255;
    zc_wbuf_u8(w, (uint8_t)n);
    zc_wbuf_bytes(w, s, n);
}

void zc_wbuf_lstr(zc_wbuf_t *w, const void *p, size_t n)
{
    zc_wbuf_u32(w, (uint32_t)n);
    zc_wbuf_bytes(w, p, n);
}

void zc_rbuf_init(zc_rbuf_t *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 0;
    r->err = false;
}

/* Return a pointer to the next n bytes and advance, or NULL (sticky err). */
static const uint8_t *take(zc_rbuf_t *r, size_t n)
{
    if (r->err || r->len - r->pos < n) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

uint8_t zc_rbuf_u8(zc_rbuf_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t zc_rbuf_u16(zc_rbuf_t *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t zc_rbuf_u32(zc_rbuf_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}

uint64_t zc_rbuf_u64(zc_rbuf_t *r)
{
    uint64_t hi = zc_rbuf_u32(r);
    uint64_t lo = zc_rbuf_u32(r);
    return (hi << 32) | lo;
}

void zc_rbuf_bytes(zc_rbuf_t *r, void *out, size_t n)
{
    const uint8_t *p = take(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

void zc_rbuf_str(zc_rbuf_t *r, char *out, size_t cap)
{
    size_t n = zc_rbuf_u8(r);
    const uint8_t *p = take(r, n);
    if (p == NULL || n + 1 > cap || memchr(p, 0, n) != NULL) {
        r->err = true;
        if (cap)
            out[0] = 0;
        return;
    }
    memcpy(out, p, n);
    out[n] = 0;
}

const uint8_t *zc_rbuf_lstr(zc_rbuf_t *r, size_t *len, size_t max)
{
    size_t n = zc_rbuf_u32(r);
    if (n > max) {
        r->err = true;
        *len = 0;
        return NULL;
    }
    const uint8_t *p = take(r, n);
    *len = p ? n : 0;
    return p;
}
