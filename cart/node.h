/* node: a cart node -- N cart slots behind one DEALER per broker replica.
 *
 * The node speaks ZCP/1 §4 to every replica (it cannot know which one leads,
 * and must not care: fencing by (session, generation) makes a stale leader
 * harmless) and §7 to the stock service.  Each CART_REQUEST runs the
 * decision procedure of docs/protocol.md §4; an add waits for its stock
 * check, which may finish in any order with other checks.
 *
 * Replies never leave before the changes they report are durable: every
 * reply goes to an outbox, and once per loop iteration (a uv_check handle)
 * the node commits the store's transaction -- one fsync for all the changes
 * of that iteration -- and only then sends the outbox. */
#ifndef ZC_CART_NODE_H
#define ZC_CART_NODE_H

#include <uv.h>

#include "cart/store.h"
#include "lib/log.h"
#include "lib/prom.h"
#include "proto/status.h"

typedef struct {
    const char *name;           /* node name, also the routing id */
    unsigned slots;             /* cart slots hosted */
    const char *data_dir;       /* LMDB directory */
    const char *brokers;        /* comma-separated cart endpoints of every replica */
    const char *stock;          /* comma-separated stock endpoints */
    unsigned stock_timeout_ms;  /* per-check timeout */
    unsigned stock_failures;    /* failed checks in a row that open an instance's breaker */
    unsigned stock_open_ms;     /* first open wait of a stock instance's breaker */
    unsigned stock_open_max_ms; /* cap of that wait, which doubles per trip in a row
                                   (at least stock_open_ms) */
    unsigned hello_interval_ms; /* HELLO period */
    unsigned broker_liveness_ms; /* a replica silent this long is reconnected; 0: 3 HELLOs */
    uint64_t map_size;          /* LMDB map of the store, bytes (0: STORE_MAP_DEFAULT) */
    uint64_t wal_size;          /* its write-ahead log, bytes (0: STORE_WAL_SIZE) */
    const struct zc_sec *sec;   /* CurveZMQ keys (lib/zsec.h; a no-op with --insecure) */
    const char *broker_key;     /* the replicas' public key, z85 (secure) */
    const char *stock_key;      /* the stock service's public key, z85 (secure) */
} cart_config_t;

typedef struct cart_node cart_node_t;

/* What /metrics and /readyz read (cart/metrics.c). */
typedef struct {
    unsigned slots;                      /* cart slots hosted */
    uint64_t replies[ZC_STATUS_COUNT];   /* CART_REPLYs sent, by status */
    zc_hist_t stock_lat;                 /* stock checks, ask to answer */
    zc_hist_t commit_lat;                /* durable commits with changes (log appends) */
    uint64_t commit_failures;            /* commits that failed */
    store_stats_t store;                 /* the store's log and checkpoints */
    uint64_t dropped;                    /* frames dropped (malformed, unexpected) */
    unsigned stock_in_flight;            /* stock checks waiting for an answer */
    size_t adds_in_flight;               /* adds waiting for their check */
    unsigned replicas;                   /* replicas configured (--brokers) */
    unsigned replicas_heard;             /* of those, heard within --broker-liveness */
    uint64_t leader_term;                /* highest term a ready leader's heartbeat named
                                            within --broker-liveness, 0: no leader heard */
    uint64_t store_used;                 /* LMDB bytes in use */
    uint64_t store_map;                  /* LMDB map size */
} cart_stats_t;

/* The defaults of every tunable (the flags' documented defaults): the one
 * place they are set. */
void cart_config_defaults(cart_config_t *c);
cart_node_t *cart_node_new(uv_loop_t *loop, const cart_config_t *cfg, char *err, size_t errlen);
/* Stop: sockets and timers close; in-flight checks are dropped unanswered
 * (their requests time out at the broker and are retried). */
void cart_node_destroy(cart_node_t **p);
void cart_node_stats(cart_node_t *n, cart_stats_t *out);

#endif
