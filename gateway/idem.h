/* idem: Idempotency-Key -> seq, so a retried HTTP request reaches the
 * cluster as the same (session, seq) and is applied at most once.
 *
 * The first request with a key under a session gets a fresh seq (the
 * libzcart rule: wall-clock microseconds, above the last one handed out)
 * and a fingerprint of what it asked (method, path, body); a later request
 * with the same session and key gets the same seq -- or, if it asks
 * something else, a conflict.  Keys live in this gateway's memory for `ttl`
 * and at most `max` of them (the oldest go first): a retry after a gateway
 * restart, or later than that, should carry an explicit Zcart-Seq header
 * instead (docs/openapi.yaml). */
#ifndef ZC_GATEWAY_IDEM_H
#define ZC_GATEWAY_IDEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct idem idem_t;

idem_t *idem_new(size_t max, uint64_t ttl_ms);
void idem_destroy(idem_t **p);
/* The seq for (session, key) asking fingerprint fp at now_ms: 0 and *seq;
 * -1 when the key was used for a different request (fingerprint differs). */
int idem_seq(idem_t *t, const char *session, const char *key, uint64_t fp, uint64_t now_ms,
             uint64_t *seq);
/* Keys held. */
size_t idem_size(const idem_t *t);

#endif
