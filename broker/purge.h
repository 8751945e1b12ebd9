/* purge: the leader forgets sessions that ended long ago (see purge.c). */
#ifndef ZC_BROKER_PURGE_H
#define ZC_BROKER_PURGE_H

#include "broker/internal.h"

/* How often the tick runs broker__purge_scan when the last batch was not full. */
#define PURGE_SCAN_MS 1000
/* Session records one scan reads at most (the scan resumes where it left). */
#define PURGE_SCAN_MAX 4096

/* Leader only: read the next stretch of the session table and propose one
 * PURGE of up to ZC_PURGE_MAX sessions ended at least --session-retention
 * ago; at most one PURGE in flight. */
void broker__purge_scan(broker_t *b, uint64_t now_us);

#endif
