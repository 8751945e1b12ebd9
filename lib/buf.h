/* buf: bounds-checked big-endian byte buffers for wire and disk codecs.
 *
 * A zc_wbuf grows on demand and owns its bytes; a zc_rbuf reads a borrowed
 * span and never reads past it.  Readers never fail loudly: the first short
 * read sets `err` and every later read returns zero, so a decoder reads all
 * its fields and checks `err` once at the end ("sticky error" style). */
#ifndef ZC_LIB_BUF_H
#define ZC_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data; /* owned bytes, NULL until the first write */
    size_t len;    /* bytes written so far */
    size_t cap;    /* bytes allocated */
    bool oom;      /* an allocation failed; contents are incomplete */
} zc_wbuf_t;

typedef struct {
    const uint8_t *data; /* borrowed bytes, not owned */
    size_t len;          /* total length of the span */
    size_t pos;          /* read cursor */
    bool err;            /* a read went past the end; sticky */
} zc_rbuf_t;

void zc_wbuf_init(zc_wbuf_t *w);
/* Free the bytes and return to the empty state. */
void zc_wbuf_clear(zc_wbuf_t *w);
/* Drop the contents but keep the allocation for reuse. */
void zc_wbuf_reset(zc_wbuf_t *w);
/* Hand the bytes to the caller (who frees them with free()); w becomes empty. */
uint8_t *zc_wbuf_take(zc_wbuf_t *w, size_t *len);

void zc_wbuf_u8(zc_wbuf_t *w, uint8_t v);
void zc_wbuf_u16(zc_wbuf_t *w, uint16_t v);
void zc_wbuf_u32(zc_wbuf_t *w, uint32_t v);
void zc_wbuf_u64(zc_wbuf_t *w, uint64_t v);
void zc_wbuf_bytes(zc_wbuf_t *w, const void *p, size_t n);
/* 1-octet length then bytes.  Longer strings are cut at 255 bytes: callers
 * validate lengths against the protocol limits before encoding. */
void zc_wbuf_str(zc_wbuf_t *w, const char *s);
/* 4-octet length then bytes. */
void zc_wbuf_lstr(zc_wbuf_t *w, const void *p, size_t n);

void zc_rbuf_init(zc_rbuf_t *r, const void *data, size_t len);
uint8_t zc_rbuf_u8(zc_rbuf_t *r);
uint16_t zc_rbuf_u16(zc_rbuf_t *r);
uint32_t zc_rbuf_u32(zc_rbuf_t *r);
uint64_t zc_rbuf_u64(zc_rbuf_t *r);
/* Copy n bytes into out (zero-filled on error). */
void zc_rbuf_bytes(zc_rbuf_t *r, void *out, size_t n);
/* Read a 1-octet-length string into out (capacity cap, NUL-terminated).
 * A string that does not fit cap-1 bytes or contains a NUL sets err. */
void zc_rbuf_str(zc_rbuf_t *r, char *out, size_t cap);
/* Read a 4-octet-length span; returns a pointer into the buffer (not copied)
 * and its length, or NULL with err set. max bounds the accepted length. */
const uint8_t *zc_rbuf_lstr(zc_rbuf_t *r, size_t *len, size_t max);
/* Bytes not yet read. */
static inline size_t zc_rbuf_left(const zc_rbuf_t *r) { return r->err ? 0 : r->len - r->pos; }
/* True when every byte was read and no read failed. */
static inline bool zc_rbuf_done(const zc_rbuf_t *r) { return !r->err && r->pos == r->len; }

#endif
