/* config: the broker's command line, parsed into one struct. */
#ifndef ZC_BROKER_CONFIG_H
#define ZC_BROKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/log.h"
#include "replication/node.h"

#define BROKER_MAX_REPLICAS 9
#define BROKER_PATH_MAX 400 /* --data, --cert, --allow */

typedef struct {
    uint64_t id;                                /* this replica's id (--id) */
    char data_dir[BROKER_PATH_MAX];             /* --data */
    zc_replica_t replicas[BROKER_MAX_REPLICAS]; /* --replica, in the order given */
    unsigned n_replicas;                        /* entries in replicas */
    unsigned election_timeout_ms;               /* --election-timeout */
    unsigned heartbeat_timeout_ms;              /* --heartbeat-timeout */
    unsigned snapshot_threshold;                /* --snapshot-threshold */
    unsigned snapshot_threshold_max;            /* --snapshot-threshold-max */
    unsigned apply_batch;                       /* --apply-batch */
    unsigned snapshot_trailing;                 /* --snapshot-trailing */
    uint64_t raft_segment_size;                 /* --raft-segment-size, bytes */
    unsigned cart_timeout_ms;                   /* --cart-timeout: wait for a cart or a commit */
    unsigned drain_retry_ms;                    /* --drain-retry: resend RESET to draining carts */
    unsigned cart_liveness_ms;                  /* --cart-liveness: a node silent this long trips
                                                      its carts' breakers */
    unsigned breaker_failures;                  /* --breaker-failures: consecutive failed
                                                      operations that trip a cart's breaker */
    unsigned breaker_wait_ms;                   /* --breaker-wait: first OPEN wait */
    unsigned breaker_wait_max_ms;               /* --breaker-wait-max: cap of the doubling wait */
    unsigned breaker_probes;                    /* --breaker-probes: probes a HALF_OPEN admits */
    unsigned session_ttl_ms;                    /* --session-ttl: a session not heard from
                                                      this long expires */
    unsigned session_retention_ms;              /* --session-retention: an ended session is
                                                      forgotten this long after it ended */
    unsigned cart_lost_ms;                      /* --cart-lost-after: a node silent this long
                                                      loses its carts' sessions to fresh carts */
    uint64_t state_map_size;                    /* --state-map-size: LMDB map of the state,
                                                      bytes; sets the storage limit */
    uint8_t placement;                          /* --placement: ZC_PLACE_* */
    unsigned max_waiting;                       /* --max-waiting: client requests a leader
                                                      works on at once; more get BUSY */
    unsigned max_proposals;                     /* --max-proposals: of those, waiting for
                                                      their own proposal to commit */
    zc_log_level_t log_level;                   /* --log-level */
    bool join;                                  /* --join: never bootstrap */
    bool recover;                               /* --recover: force the --replica set */
    bool dump_state;                            /* --dump-state: print DIR/state, exit */
    char cert[BROKER_PATH_MAX];                 /* --cert: this replica's secret certificate */
    char allow[BROKER_PATH_MAX];                /* --allow: directory of trusted public certs */
    char raft_cert[BROKER_PATH_MAX];            /* --raft-cert: this replica's own raft key
                                                                  ("" none: the shared replica key) */
    bool insecure;                              /* --insecure: no CurveZMQ, no key checks */
    char http[BROKER_PATH_MAX];                 /* --http HOST:PORT, empty: off */
    char backup_dir[BROKER_PATH_MAX];           /* --backup-dir (default DATA/backups) */
    char restore[BROKER_PATH_MAX];              /* --restore BACKUP: seed DATA, exit */
    unsigned ready_lag;                         /* --ready-lag: a follower further behind the
                                                      leader's commit index is not ready */
} broker_config_t;

/* Parse argv.  Returns 0 to run, 1 when --help was printed, 2 on a usage
 * error (message already printed to stderr). */
int broker__config_parse(broker_config_t *c, int argc, char **argv);
/* Parse "ID=RAFT_ADDR,CLIENT_EP,CART_EP"; false on a malformed spec. */
bool broker__parse_replica(const char *spec, zc_replica_t *out);

#endif
