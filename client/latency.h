/* latency: per-request latency samples and their percentiles (zcart-bench).
 *
 * Every request's latency is kept, not a histogram: a run records at most a
 * few million samples (4 bytes each) and exact percentiles need no bucket
 * tuning.  The array is preallocated and doubles when full, so recording
 * costs no allocation in the steady state; percentiles sort once at the
 * end (nearest-rank: the p-th percentile of n samples is the
 * ceil(p/100 * n)-th smallest). */
#ifndef ZC_CLIENT_LATENCY_H
#define ZC_CLIENT_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable set of samples, in microseconds. */
typedef struct {
    uint32_t *us; /* owned samples (saturated at UINT32_MAX) */
    size_t n;     /* samples recorded */
    size_t cap;   /* samples allocated */
    uint64_t sum; /* sum of the samples, for the mean */
    bool sorted;  /* us[0..n) is in ascending order */
} zlat_t;

/* Empty set with room for `prealloc` samples.  -1 if out of memory. */
int zlat_init(zlat_t *l, size_t prealloc);
/* Free the samples; l becomes empty (and may be re-initialised). */
void zlat_clear(zlat_t *l);
/* Record one sample.  -1 if out of memory (the sample is lost). */
int zlat_add(zlat_t *l, uint64_t us);
/* Append every sample of `from` to `into`.  -1 if out of memory. */
int zlat_merge(zlat_t *into, const zlat_t *from);
/* The p-th percentile (0 < p <= 100), 0 for an empty set.  Sorts l once. */
uint32_t zlat_percentile(zlat_t *l, double p);
/* Largest sample, 0 for an empty set. */
uint32_t zlat_max(zlat_t *l);
/* Mean, 0 for an empty set. */
double zlat_mean(const zlat_t *l);

#endif
