/* clock: the two clocks zcart uses.
 *
 * Wall time (ms since the Unix epoch) is what crosses process boundaries:
 * request deadlines, lease deadlines proposed by a leader.  Monotonic time
 * is for local timeouts and latency measurement only. */
#ifndef ZC_LIB_CLOCK_H
#define ZC_LIB_CLOCK_H

#include <stdint.h>

uint64_t zc_wall_ms(void);
uint64_t zc_mono_us(void);
static inline uint64_t zc_mono_ms(void) { return zc_mono_us() / 1000; }

#endif
