/* map: see map.h.  Backward-shift deletion keeps every probe chain
 * contiguous, so lookups stop at the first empty slot. */
#include "lib/map.h"

#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

typedef struct {
    uint64_t hash;                /* full hash, 0 marks an empty slot */
    uint8_t klen;                 /* key length */
    uint8_t key[ZC_MAP_KEY_MAX];  /* key bytes */
    void *value;                  /* borrowed value */
} slot_t;

struct zc_map {
    slot_t *slots; /* capacity entries, a power of two */
    size_t cap;    /* slots allocated */
    size_t n;      /* slots in use */
};

static uint64_t hash_key(const void *k, size_t n)
{
    uint64_t h = zc_fnv64(ZC_FNV64_INIT, k, n);
    return h ? h : 1; /* 0 means empty */
}

zc_map_t *zc_map_new(void)
{
    zc_map_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (m->slots == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void zc_map_destroy(zc_map_t **p)
{
    if (*p == NULL)
        return;
    free((*p)->slots);
    free(*p);
    *p = NULL;
}

size_t zc_map_size(const zc_map_t *m) { return m->n; }

static size_t find(const zc_map_t *m, uint64_t h, const void *key, size_t klen, bool *found)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot_t *s = &m->slots[i];
        if (s->hash == 0) {
            *found = false;
            return i;
        }
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) {
            *found = true;
            return i;
        }
    }
}

void *zc_map_get(const zc_map_t *m, const void *key, size_t klen)
{
    bool found;
    if (klen > ZC_MAP_KEY_MAX)
        return NULL;
    size_t i = find(m, hash_key(key, klen), key, klen, &found);
    return found ? m->slots[i].value : NULL;
}

static int grow(zc_map_t *m)
{
    size_t old_cap = m->cap;
    slot_t *old = m->slots;
    m->slots = calloc(old_cap * 2, sizeof *m->slots);
    if (m->slots == NULL) {
        m->slots = old;
        return -1;
    }
    m->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].hash == 0)
            continue;
        bool found;
        size_t j = find(m, old[i].hash, old[i].key, old[i].klen, &found);
        m->slots[j] = old[i];
    }
    free(old);
    return 0;
}

int zc_map_put(zc_map_t *m, const void *key, size_t klen, void *value)
{
    if (klen > ZC_MAP_KEY_MAX)
        return -1;
    if ((m->n + 1) * 10 > m->cap * 7 && grow(m) != 0)
        return -1;
    uint64_t h = hash_key(key, klen);
    bool found;
    size_t i = find(m, h, key, klen, &found);
    slot_t *s = &m->slots[i];
    if (!found) {
        s->hash = h;
        s->klen = (uint8_t)klen;
        memcpy(s->key, key, klen);
        m->n++;
    }
    s->value = value;
    return 0;
}

void *zc_map_del(zc_map_t *m, const void *key, size_t klen)
{
    bool found;
    if (klen > ZC_MAP_KEY_MAX)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, hash_key(key, klen), key, klen, &found);
    if (!found)
        return NULL;
    void *v = m->slots[i].value;
    /* Backward shift: pull later members of the chain into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Move j into the hole if its home is not in (hole, j]. */
        bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    m->n--;
    return v;
}

void zc_map_each(const zc_map_t *m, int (*fn)(const void *key, size_t klen, void *value, void *arg),
                 void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        const slot_t *s = &m->slots[i];
        if (s->hash != 0 && fn(s->key, s->klen, s->value, arg) != 0)
            return;
    }
}

int zc_map_free_value(const void *key, size_t klen, void *value, void *arg)
{
    (void)key;
    (void)klen;
    (void)arg;
    free(value);
    return 0;
}
