/* api: the gateway's HTTP resources (docs/openapi.yaml is the contract).
 *
 *   POST   /v1/sessions/{session}/items            {"product": P, "qty": N}: add
 *   DELETE /v1/sessions/{session}/items/{product}?qty=N                   : remove
 *   GET    /v1/sessions/{session}/cart                                    : list
 *   DELETE /v1/sessions/{session}                                         : close
 *   GET    /v1/cluster                          every replica's status
 *   GET    /v1/gateway                          this gateway's own counters
 *   GET    /  (and /dashboard)                  the dashboard page
 *   GET    /healthz                             "ok"
 *
 * A request is checked here, on the loop, and answered 400 (naming the
 * field) before anything is sent; a valid one becomes a pool job (pool.h)
 * and its connection waits, suspended, for the answer.  KO reasons map to
 * HTTP statuses in one table (api.c: ko_table), errors are
 * application/problem+json (RFC 9457).  Exactly-once: an Idempotency-Key
 * header (or an explicit Zcart-Seq) pins the (session, seq) the cluster
 * deduplicates on, so a retried POST is applied once (idem.h). */
#ifndef ZC_GATEWAY_API_H
#define ZC_GATEWAY_API_H

#include <stdint.h>

#include "gateway/idem.h"
#include "gateway/pool.h"
#include "lib/httpd.h"
#include "lib/prom.h"

typedef struct {
    const char *token;     /* bearer token every /v1 request must carry; NULL: none */
    unsigned max_inflight; /* cluster calls queued or running; beyond: 503 */
    unsigned retry_after;  /* seconds, in Retry-After of 503s */
} api_config_t;

typedef struct {
    api_config_t cfg;       /* as given */
    pool_t *pool;           /* cluster calls (borrowed) */
    idem_t *idem;           /* Idempotency-Key table (borrowed) */
    uint64_t requests;      /* HTTP requests seen */
    uint64_t by_status[6];  /* answers by status class: [1] 1xx .. [5] 5xx */
    uint64_t rejected_busy; /* 503 because max_inflight was reached */
    uint64_t unauthorized;  /* 401s */
    zc_hist_t lat[5];       /* request complete to answer, per job kind (pool.h) */
    zc_hist_recent_t recent[5]; /* the same over the last 5-10 s */
    uint64_t started_ms;    /* wall clock at start */
} api_t;

void api_init(api_t *a, const api_config_t *cfg, pool_t *pool, idem_t *idem);
/* The httpd API handler (lib/httpd.h); arg is the api_t. */
void api_handle(void *arg, zc_http_req_t *req);
/* The HTTP status a KO reason maps to (the table). */
int api_http_status(int protocol_status);

#endif
