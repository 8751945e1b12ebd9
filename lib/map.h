/* map: a hash map from short byte-string keys to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), FNV-1a hashing, keys copied into the map (at most
 * ZC_MAP_KEY_MAX bytes).  Values are borrowed pointers: the map never frees
 * them.  Grows at 70% load.  Iteration order is unspecified, and inserting or
 * deleting during zc_map_each is not allowed (collect keys first). */
#ifndef ZC_LIB_MAP_H
#define ZC_LIB_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZC_MAP_KEY_MAX 64

typedef struct zc_map zc_map_t;

zc_map_t *zc_map_new(void);
void zc_map_destroy(zc_map_t **p);
size_t zc_map_size(const zc_map_t *m);
/* Value for key, or NULL. */
void *zc_map_get(const zc_map_t *m, const void *key, size_t klen);
/* Insert or replace.  -1 if the key is too long or memory ran out. */
int zc_map_put(zc_map_t *m, const void *key, size_t klen, void *value);
/* Remove and return the value (NULL if absent). */
void *zc_map_del(zc_map_t *m, const void *key, size_t klen);
/* Call fn for every entry; stop when it returns non-zero. */
/* A zc_map_each callback that free()s each value: zc_map_each(m,
 * zc_map_free_value, NULL) before zc_map_destroy, for maps owning malloc'd
 * values. */
int zc_map_free_value(const void *key, size_t klen, void *value, void *arg);
void zc_map_each(const zc_map_t *m, int (*fn)(const void *key, size_t klen, void *value, void *arg),
                 void *arg);

/* Conveniences for u64 and C-string keys. */
static inline void *zc_map_get_u64(const zc_map_t *m, uint64_t k) { return zc_map_get(m, &k, sizeof k); }
static inline int zc_map_put_u64(zc_map_t *m, uint64_t k, void *v) { return zc_map_put(m, &k, sizeof k, v); }
static inline void *zc_map_del_u64(zc_map_t *m, uint64_t k) { return zc_map_del(m, &k, sizeof k); }

#endif
