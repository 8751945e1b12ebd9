/* hash: FNV-1a, 64-bit.  Used for state digests that replicas compare; it is
 * a checksum, not a defence against an adversary. */
#ifndef ZC_LIB_HASH_H
#define ZC_LIB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ZC_FNV64_INIT 0xcbf29ce484222325ull

static inline uint64_t zc_fnv64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif
