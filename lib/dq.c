/* dq: see dq.h.  A textbook binary heap over an array of entry pointers;
 * every move writes the entry's new position back into it. */
#include "lib/dq.h"

#include <stdlib.h>

void zc_dq_init(zc_dq_t *q)
{
    q->heap = NULL;
    q->n = q->cap = 0;
}

void zc_dq_clear(zc_dq_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        q->heap[i]->pos = 0;
    free(q->heap);
    zc_dq_init(q);
}

static void place(zc_dq_t *q, size_t i, zc_dq_entry_t *e)
{
    q->heap[i] = e;
    e->pos = i + 1;
}

/* Move the entry at i toward the root while it is earlier than its parent. */
static void sift_up(zc_dq_t *q, size_t i)
{
    zc_dq_entry_t *e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->deadline <= e->deadline)
            break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, e);
}

/* Move the entry at i toward the leaves while a child is earlier. */
static void sift_down(zc_dq_t *q, size_t i)
{
    zc_dq_entry_t *e = q->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && q->heap[child + 1]->deadline < q->heap[child]->deadline)
            child++;
        if (e->deadline <= q->heap[child]->deadline)
            break;
        place(q, i, q->heap[child]);
        i = child;
    }
    place(q, i, e);
}

int zc_dq_set(zc_dq_t *q, zc_dq_entry_t *e, uint64_t deadline)
{
    if (e->pos != 0) {
        size_t i = e->pos - 1;
        bool earlier = deadline < e->deadline;
        e->deadline = deadline;
        if (earlier)
            sift_up(q, i);
        else
            sift_down(q, i);
        return 0;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        zc_dq_entry_t **h = realloc(q->heap, cap * sizeof *h);
        if (h == NULL)
            return -1;
        q->heap = h;
        q->cap = cap;
    }
    e->deadline = deadline;
    place(q, q->n++, e);
    sift_up(q, q->n - 1);
    return 0;
}

void zc_dq_remove(zc_dq_t *q, zc_dq_entry_t *e)
{
    if (e->pos == 0)
        return;
    size_t i = e->pos - 1;
    e->pos = 0;
    zc_dq_entry_t *last = q->heap[--q->n];
    if (i == q->n)
        return; /* it was the last one */
    place(q, i, last);
    if (i > 0 && q->heap[(i - 1) / 2]->deadline > last->deadline)
        sift_up(q, i);
    else
        sift_down(q, i);
}

zc_dq_entry_t *zc_dq_peek(const zc_dq_t *q) { return q->n ? q->heap[0] : NULL; }

zc_dq_entry_t *zc_dq_pop_due(zc_dq_t *q, uint64_t now)
{
    zc_dq_entry_t *e = zc_dq_peek(q);
    if (e == NULL || e->deadline > now)
        return NULL;
    zc_dq_remove(q, e);
    return e;
}
