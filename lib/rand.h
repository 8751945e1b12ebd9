/* rand: xorshift64, the one pseudo-random step zcart uses where spread
 * matters and quality does not (retry jitter, the sim's seeded streams).
 * Header only: the client library uses it without linking lib/. */
#ifndef ZC_LIB_RAND_H
#define ZC_LIB_RAND_H

#include <stdint.h>

/* Advances *state (never 0) and returns the new value. */
static inline uint64_t zc_xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
