/* idem: see idem.h.  A hash map keyed by FNV-1a of (session, key) holds
 * entries that also sit in a list in order of first use; the list's head is
 * the oldest, dropped when the table is full or the entry's time is up.
 * Entries keep the full session and key, so a hash collision is a miss. */
#include "gateway/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lib/hash.h"
#include "lib/list.h"
#include "lib/map.h"

typedef struct {
    uint64_t hash;    /* FNV-1a of session, NUL, key: the map's key */
    char session[33]; /* the session's hex id */
    char key[256];    /* the Idempotency-Key */
    uint64_t fp;      /* fingerprint of the first request */
    uint64_t seq;     /* the seq it got */
    uint64_t born_ms; /* when */
    zc_link_t age;    /* in idem.by_age */
} entry_t;

struct idem {
    zc_map_t *map;     /* hash -> entry_t */
    zc_link_t by_age;  /* entries, oldest first */
    size_t max;        /* entries at most */
    uint64_t ttl_ms;   /* lifetime of an entry */
    uint64_t last_seq; /* the last seq handed out */
};

idem_t *idem_new(size_t max, uint64_t ttl_ms)
{
    idem_t *t = calloc(1, sizeof *t);
    if (t == NULL || (t->map = zc_map_new()) == NULL) {
        free(t);
        return NULL;
    }
    zc_link_init(&t->by_age);
    t->max = max ? max : 1;
    t->ttl_ms = ttl_ms;
    return t;
}

static void drop(idem_t *t, entry_t *e)
{
    zc_map_del_u64(t->map, e->hash);
    zc_link_remove(&e->age);
    free(e);
}

void idem_destroy(idem_t **p)
{
    idem_t *t = *p;
    if (t == NULL)
        return;
    *p = NULL;
    while (!zc_list_empty(&t->by_age))
        drop(t, ZC_CONTAINER(t->by_age.next, entry_t, age));
    zc_map_destroy(&t->map);
    free(t);
}

static uint64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

int idem_seq(idem_t *t, const char *session, const char *key, uint64_t fp, uint64_t now_ms,
             uint64_t *seq)
{
    while (!zc_list_empty(&t->by_age)) {
        entry_t *old = ZC_CONTAINER(t->by_age.next, entry_t, age);
        if (now_ms - old->born_ms < t->ttl_ms && zc_map_size(t->map) < t->max)
            break;
        drop(t, old);
    }
    uint64_t h = zc_fnv64(ZC_FNV64_INIT, session, strlen(session) + 1);
    h = zc_fnv64(h, key, strlen(key));
    entry_t *e = zc_map_get_u64(t->map, h);
    if (e && strcmp(e->session, session) == 0 && strcmp(e->key, key) == 0) {
        if (e->fp != fp)
            return -1;
        *seq = e->seq;
        return 0;
    }
    if (e)
        drop(t, e); /* a collision: the newer key wins */
    uint64_t s = wall_us();
    s = s > t->last_seq ? s : t->last_seq + 1;
    t->last_seq = s;
    *seq = s;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return 0; /* no memory to remember it: this request still goes once */
    e->hash = h;
    snprintf(e->session, sizeof e->session, "%s", session);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->fp = fp;
    e->seq = s;
    e->born_ms = now_ms;
    if (zc_map_put_u64(t->map, h, e) != 0) {
        free(e);
        return 0;
    }
    zc_list_push_back(&t->by_age, &e->age);
    return 0;
}

size_t idem_size(const idem_t *t) { return zc_map_size(t->map); }
