/* json: a small streaming JSON writer, and a reader for flat objects (the
 * REST gateway's request bodies).
 *
 *   zc_json_t j; zc_json_init(&j);
 *   zc_json_obj(&j); zc_json_key(&j, "ok"); zc_json_bool(&j, true); zc_json_end(&j);
 *   puts(zc_json_str(&j)); zc_json_clear(&j);
 *
 * Commas are inserted automatically; nesting is limited to 16 levels. */
#ifndef ZC_LIB_JSON_H
#define ZC_LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

typedef struct {
    zc_wbuf_t out;   /* text so far, NUL-terminated by zc_json_str */
    int depth;       /* open containers */
    bool first[16];  /* per level: no element written yet */
    char closer[16]; /* per level: '}' or ']' */
    bool after_key;  /* a key was just written; next value needs no comma */
} zc_json_t;

void zc_json_init(zc_json_t *j);
void zc_json_clear(zc_json_t *j);
void zc_json_obj(zc_json_t *j);
void zc_json_arr(zc_json_t *j);
void zc_json_end(zc_json_t *j);
void zc_json_key(zc_json_t *j, const char *k);
void zc_json_string(zc_json_t *j, const char *s);
void zc_json_u64(zc_json_t *j, uint64_t v);
void zc_json_i64(zc_json_t *j, int64_t v);
void zc_json_double(zc_json_t *j, double v);
void zc_json_bool(zc_json_t *j, bool v);
void zc_json_null(zc_json_t *j);
/* Key-value shorthands. */
void zc_json_kstr(zc_json_t *j, const char *k, const char *s);
void zc_json_ku64(zc_json_t *j, const char *k, uint64_t v);
void zc_json_kbool(zc_json_t *j, const char *k, bool v);
/* The text so far (valid until the next write). */
const char *zc_json_str(zc_json_t *j);

/* --- reading ------------------------------------------------------------------
 * A flat object: {"key": value, ...} where a value is a string, an integer,
 * true, false or null -- no nesting, no fractions, no duplicate keys. */
#define ZC_JSON_STR_MAX 255
typedef enum { ZC_JSON_STRING, ZC_JSON_INT, ZC_JSON_BOOL, ZC_JSON_NULL } zc_json_kind_t;
typedef struct {
    char key[65];                  /* the member's name (at most 64 octets) */
    zc_json_kind_t kind;           /* its value's kind */
    char str[ZC_JSON_STR_MAX + 1]; /* STRING: the text, unescaped (no NUL inside) */
    int64_t num;                   /* INT: the value; BOOL: 0 or 1 */
} zc_json_member_t;
/* Read text[0..len) into at most max members.  0 and *n on success; -1 and
 * why (naming the offset) on anything else. */
int zc_json_read_flat(const char *text, size_t len, zc_json_member_t *out, size_t max, size_t *n,
                      char *why, size_t whylen);
/* The member named key, or NULL. */
const zc_json_member_t *zc_json_member(const zc_json_member_t *m, size_t n, const char *key);

#endif
