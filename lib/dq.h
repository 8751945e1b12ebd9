/* dq: a deadline queue -- timers kept in a binary min-heap by deadline.
 *
 * A daemon that must act when each of many things comes due (a lease runs
 * out, a node has been silent too long, a reset is to be resent) should
 * not walk all of them on every tick: the tick pops only what is due, at
 * O(log n) each, and costs O(1) when nothing is.
 *
 * Intrusive, like lib/list.h: embed a zc_dq_entry_t in the struct that owns
 * the timer and get back to it with ZC_CONTAINER.  The entry remembers its
 * place in the heap, so moving a deadline (zc_dq_set on a queued entry) or
 * cancelling it (zc_dq_remove) is O(log n) with no search.
 *
 * Rules: an entry is in at most one queue; zc_dq_remove it before freeing
 * its owner; zc_dq_clear unqueues every entry (it frees only the heap's
 * array, never an entry).  Entries due at the same deadline pop in no
 * particular order.  Deadlines are whatever clock the caller uses
 * (monotonic microseconds in the broker). */
#ifndef ZC_LIB_DQ_H
#define ZC_LIB_DQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zc_dq_entry {
    uint64_t deadline; /* when it is due; valid while queued */
    size_t pos;        /* 1 + its index in the heap; 0 = not queued */
} zc_dq_entry_t;

typedef struct {
    zc_dq_entry_t **heap; /* queued entries, heap-ordered by deadline (owned array) */
    size_t n;             /* entries queued */
    size_t cap;           /* slots allocated in heap */
} zc_dq_t;

void zc_dq_init(zc_dq_t *q);
/* Unqueue every entry and free the array; the queue is empty and usable. */
void zc_dq_clear(zc_dq_t *q);
/* Mark an entry as not queued (call once when its owner is created). */
static inline void zc_dq_entry_init(zc_dq_entry_t *e) { e->pos = 0; e->deadline = 0; }
static inline bool zc_dq_queued(const zc_dq_entry_t *e) { return e->pos != 0; }
static inline size_t zc_dq_size(const zc_dq_t *q) { return q->n; }
/* Queue e at deadline, or move it there if queued.  0, or -1 (out of
 * memory: e is then left as it was). */
int zc_dq_set(zc_dq_t *q, zc_dq_entry_t *e, uint64_t deadline);
/* Unqueue e (nothing if it is not queued). */
void zc_dq_remove(zc_dq_t *q, zc_dq_entry_t *e);
/* The earliest entry, or NULL when empty; it stays queued. */
zc_dq_entry_t *zc_dq_peek(const zc_dq_t *q);
/* Unqueue and return the earliest entry whose deadline is <= now, or NULL. */
zc_dq_entry_t *zc_dq_pop_due(zc_dq_t *q, uint64_t now);

#endif
