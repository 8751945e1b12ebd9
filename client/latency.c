/* latency: see latency.h. */
#include "client/latency.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int zlat_init(zlat_t *l, size_t prealloc)
{
    memset(l, 0, sizeof *l);
    if (prealloc == 0)
        return 0;
    l->us = malloc(prealloc * sizeof *l->us);
    if (l->us == NULL)
        return -1;
    l->cap = prealloc;
    return 0;
}

void zlat_clear(zlat_t *l)
{
    free(l->us);
    memset(l, 0, sizeof *l);
}

static int reserve(zlat_t *l, size_t need)
{
    if (need <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < need)
        cap *= 2;
    uint32_t *p = realloc(l->us, cap * sizeof *p);
    if (p == NULL)
        return -1;
    l->us = p;
    l->cap = cap;
    return 0;
}

int zlat_add(zlat_t *l, uint64_t us)
{
    if (reserve(l, l->n + 1) != 0)
        return -1;
    uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    l->us[l->n++] = v;
    l->sum += v;
    l->sorted = false;
    return 0;
}

int zlat_merge(zlat_t *into, const zlat_t *from)
{
    if (from->n == 0)
        return 0;
    if (reserve(into, into->n + from->n) != 0)
        return -1;
    memcpy(into->us + into->n, from->us, from->n * sizeof *from->us);
    into->n += from->n;
    into->sum += from->sum;
    into->sorted = false;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void sort(zlat_t *l)
{
    if (!l->sorted && l->n > 1)
        qsort(l->us, l->n, sizeof *l->us, cmp_u32);
    l->sorted = true;
}

uint32_t zlat_percentile(zlat_t *l, double p)
{
    if (l->n == 0)
        return 0;
    sort(l);
    double rank = ceil(p / 100.0 * (double)l->n);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    return l->us[i < l->n ? i : l->n - 1];
}

uint32_t zlat_max(zlat_t *l)
{
    if (l->n == 0)
        return 0;
    sort(l);
    return l->us[l->n - 1];
}

double zlat_mean(const zlat_t *l) { return l->n ? (double)l->sum / (double)l->n : 0; }
