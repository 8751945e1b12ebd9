/* broker: the state one broker replica process shares between its modules.
 *
 * A replica is one libuv loop driving three things: the raft node
 * (replication/), the client-side ROUTER (frontend.c) and the cart-side
 * ROUTER (backend.c).  Only a *ready* leader (replication/node.h) routes;
 * every other replica answers clients NOT_LEADER and only reports status.
 *
 * A client request that cannot be answered at once becomes a breq: it waits
 * for the leader to become ready (PARKED), for an ASSIGN or RELEASE to commit,
 * for its cart's node to (re)connect (after a broker restart or failover a
 * node is known only once its next HELLO arrives), or for its cart to answer.  Every breq sits in `inflight` (by corr, the id
 * carts echo) and in `waiting`, a FIFO whose order is also expiry order
 * because every wait lasts cart_timeout_ms.  Nothing else is kept per
 * request; the assignment table itself lives only in the replicated state.
 *
 * Volatile per-node and per-cart state (last HELLO, RESET sent, RETURN
 * pending) is a cache a new leader rebuilds from HELLOs and the replicated
 * state; losing it never loses a decision. */
#ifndef ZC_BROKER_BROKER_H
#define ZC_BROKER_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/config.h"
#include "lib/dq.h"
#include "lib/list.h"
#include "lib/map.h"
#include "lib/prom.h"
#include "lib/stallwatch.h"
#include "lib/zmqx.h"
#include "lib/zsec.h"
#include "proto/msg.h"
#include "proto/status.h"
#include "replication/node.h"

#define BROKER_CLIENT_ID_MAX 255
/* Distinct cart node names a replica accepts HELLOs from; a HELLO under one
 * more new name is dropped and counted.  A name leaves the node map when
 * `zcart admin remove-cart-node` unregisters it (on the leader at once; on
 * a follower when the map is full and the name has no registered cart and
 * has been silent for --cart-liveness: broker__registry_make_room). */
#define BROKER_NODES_MAX 256

/* The request lifecycle, a checked transition table (route.c, breq_next):
 *
 *   NEW ----> PARKED ----> (as from NEW, once the leader is ready)
 *    |
 *    +------> ASSIGNING --> PROBING, AT_CART, AT_NODE   (the add goes on)
 *    +------> RELEASING                                 (close)
 *    +------> TELLING                                   (CART_LOST)
 *    +------> PROBING ----> AT_CART, AT_NODE
 *    +------> AT_NODE ----> PROBING, AT_CART            (its node said HELLO)
 *    +------> AT_CART
 *
 * Every state may end (the client is answered and the breq freed); nothing
 * else moves.  A move the table lacks is a bug: logged, answered INTERNAL. */
typedef enum {
    BREQ_NEW = 0,    /* just arrived, not waiting for anything yet */
    BREQ_PARKED = 1, /* leader not ready yet */
    BREQ_ASSIGNING,  /* ASSIGN proposed, waiting for the commit */
    BREQ_AT_CART,    /* CART_REQUEST sent, waiting for the CART_REPLY */
    BREQ_RELEASING,  /* RELEASE proposed, waiting for the commit */
    BREQ_AT_NODE,    /* its cart's node is not connected: waiting for its HELLO */
    BREQ_PROBING,    /* HALF_OPEN breaker: PROBE proposed, waiting for the commit */
    BREQ_TELLING,    /* the session's cart was lost: LOST_TOLD proposed, waiting */
    BREQ_N_STATES
} breq_state_t;

/* One client request in progress. */
/* Client answers by operation and status, for /metrics (metrics.c).  Op 0
 * is a request whose op could not be read; ops 1..5 are proto/msg.h's. */
#define BROKER_OPS 6
typedef struct {
    uint64_t answers[BROKER_OPS][ZC_STATUS_COUNT]; /* REPLYs sent */
    zc_hist_t latency[BROKER_OPS];                 /* arrival to answer, requests that
                                                      waited (a cart or a commit) */
    zc_hist_recent_t recent;                       /* the same, every op, last 5-10 s
                                                      (STATUS, the dashboard) */
    uint64_t answered;                             /* REPLYs sent, all ops and statuses */
} broker_reqstats_t;

typedef struct breq {
    uint64_t corr;                        /* key in inflight; CART_REQUEST corr */
    breq_state_t state;                   /* what it waits for */
    uint8_t client[BROKER_CLIENT_ID_MAX]; /* client's ROUTER routing id */
    uint8_t client_len;                   /* its length */
    zc_msg_t req;                         /* the REQUEST (has no lists) */
    char cart[ZC_CART_MAX + 1];           /* assigned cart, once known */
    uint64_t generation;                  /* its generation */
    uint64_t term;                        /* term it was dispatched in as a ready
                                                   leader (REPLY term), 0 if never */
    bool probe;                           /* admitted as a HALF_OPEN probe */
    uint64_t probe_since_ms;              /* the breaker's since_ms when it was:
                                                   its result counts for that period only */
    uint64_t expires_us;                  /* monotonic time the wait ends */
    uint64_t started_us;                  /* monotonic time it arrived (metrics) */
    zc_link_t link;                       /* in broker.waiting */
} breq_t;

/* What the leader remembers about a cart node between HELLOs. */
typedef struct {
    char name[ZC_NODE_MAX + 1];    /* node name */
    char rid[ZC_NODE_RID_MAX + 1]; /* routing id of the connection its last frame its key
                                      vouched for came on: where the leader sends ("" none) */
    uint64_t last_hello_us;        /* monotonic time of the last HELLO */
    uint64_t last_hello_wall_ms;   /* wall time of the same (breaker records use wall time) */
    bool register_pending;         /* a REGISTER for it is being committed */
    bool unregister_pending;       /* an UNREGISTER of slots it no longer has is being committed */
    bool hello_settled;            /* the last full look at a HELLO found nothing to commit */
    uint64_t settled_epoch;        /* the registry epoch it was made at (zc_state_registry_epoch) */
    uint64_t settled_slots;        /* FNV-1a of that HELLO's slot numbers, in order */
    zc_dq_entry_t due;             /* in broker.node_q at when it would be silent too long */
} node_info_t;

/* What the leader remembers about a draining cart. */
typedef struct {
    char id[ZC_CART_MAX + 1]; /* cart id */
    uint64_t reset_sent_us;   /* when RESET was last sent, 0 never */
    uint64_t reset_gen;       /* generation that RESET named */
    bool return_pending;      /* a RETURN for it is being committed */
    zc_dq_entry_t due;        /* in broker.drain_q at its next RESET */
} cart_info_t;

struct broker;

/* The broker core's ports to the world: everything it does to the raft node
 * and to the two ROUTER sockets goes through these, so that its decisions
 * (route.c above all) run in unit tests against a fake node and recorded
 * sends (tests/unit/test_route.c).  broker/io.c wires the real ones. */
typedef struct broker_io {
    /* raft: this replica's view (zc_node_info) and readiness (zc_node_ready) */
    void (*info)(struct broker *b, zc_node_info_t *out);
    bool (*ready)(struct broker *b);
    /* the replicated state, read-only to the broker (zc_node_state) */
    zc_state_t *(*state)(struct broker *b);
    /* raft's configuration: ids and role names, at most max (zc_node_configuration) */
    unsigned (*configuration)(struct broker *b, uint64_t *ids, const char **roles, unsigned max);
    /* a member of the configuration by raft id (zc_node_member) */
    bool (*member)(struct broker *b, uint64_t id, zc_replica_t *out);
    /* propose a command; cb runs once, maybe before this returns (zc_node_propose) */
    void (*propose)(struct broker *b, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg);
    /* one encoded frame to a client routing id (the client ROUTER); 0 or -1 */
    int (*send_client)(struct broker *b, const uint8_t *rid, size_t rid_len, const void *frame,
                       size_t len);
    /* one encoded frame to a cart node's routing id (the cart ROUTER); 0 or -1 */
    int (*send_node)(struct broker *b, const char *rid, const void *frame, size_t len);
} broker_io_t;

/* The real ports (broker/io.c). */
extern const broker_io_t broker__io_real;

typedef struct broker {
    uv_loop_t *loop;          /* the one event loop */
    broker_config_t cfg;      /* parsed flags */
    zc_node_t *node;          /* raft node + replicated state (reached through io) */
    const broker_io_t *io;    /* the ports every module acts through */
    const zc_replica_t *self; /* this replica in cfg.replicas */
    void *zctx;               /* ZeroMQ context: czmq's, where zauth answers (lib/zsec.h) */
    zc_sec_t *sec;            /* CurveZMQ keys and the ZAP handler; --insecure: a no-op */
    zc_sec_t *raft_sec;       /* --raft-cert: this replica's own raft key, or NULL */
    uint64_t forbidden;       /* frames refused for their key's role or name */
    void *front;              /* client-side ROUTER */
    void *back;               /* cart-side ROUTER */
    zc_watch_t *front_w;      /* watcher for front */
    zc_watch_t *back_w;       /* watcher for back */
    uv_timer_t tick;          /* timeouts and drain retries */
    uv_signal_t sigint;       /* shutdown */
    uv_signal_t sigterm;      /* shutdown */
    bool stopping;            /* shutdown started */
    void (*finish_stop)(struct broker *b); /* the process's last step of a stop (closing
                                              raft and the state); backup.c calls it when
                                              a stop waited for a backup */
    bool handing_off;                      /* SIGTERM to a leader: transferring leadership first */
    uv_timer_t handoff_timer;              /* bounds that wait */
    int exit_code;                         /* process exit status once the loop ends */
    bool was_ready;                        /* readiness at the last role change */
    uint64_t next_corr;                    /* corr of the next breq */
    zc_map_t *inflight;                    /* corr -> breq_t */
    zc_link_t waiting;                     /* breq_t by expiry */
    unsigned n_at_node;                    /* breqs in state BREQ_AT_NODE */
    unsigned n_proposing;                  /* breqs waiting for their own proposal to commit
                                 (ASSIGNING, RELEASING, PROBING, TELLING) */
    uint64_t busy;                         /* requests answered BUSY (admission control) */
    uint64_t digest;                       /* status: the state's digest at digest_index ... */
    uint64_t digest_index;                 /* ... the applied index it was computed at */
    bool digest_valid;                     /* digest/digest_index hold a computed value */
    zc_map_t *nodes;                       /* node name -> node_info_t */
    uint64_t last_room_us;                 /* last broker__registry_make_room sweep (monotonic) */
    zc_dq_t node_q;            /* liveness.c's nodes by when they would be silent too long */
    zc_map_t *carts;           /* cart id -> cart_info_t (draining carts) */
    zc_dq_t drain_q;           /* drain.c's draining carts by their next RESET */
    zc_map_t *breakers;        /* cart id -> liveness.c's brk_info_t (failure counts) */
    zc_map_t *leases;          /* session id -> lease.c's lease_t (last request heard) */
    zc_dq_t lease_q;           /* lease.c's leases by when they run out */
    uint64_t last_lease_us;    /* last lease scan (tick gating) */
    uint64_t lease_prev_us;    /* previous lease scan (stall detection) */
    uint64_t ready_since_us;   /* monotonic time this replica last became a ready leader */
    uint64_t last_liveness_us; /* last liveness scan (tick gating) */
    uint64_t liveness_prev_us; /* previous liveness scan (stall detection) */
    uint64_t last_drain_us;    /* last drain scan */
    uint64_t last_peers_us;    /* last broker__peers_sync (tick gating) */
    uint64_t last_purge_us;    /* last purge scan (purge.c) */
    uint8_t purge_from[ZC_SESSION_LEN]; /* where the next purge scan starts */
    bool purge_pending;                 /* a PURGE is being committed */
    bool purge_backlog;                 /* the last scan stopped early: scan again next tick */
    struct peers *peers;                /* connection watch on the other replicas */
    bool members_seeded;                /* directory seeded in this leadership */
    uint64_t bad_requests;              /* client frames answered BAD_REQUEST */
    uint64_t dropped;                   /* cart-side frames dropped */
    zc_stallwatch_t *stall;             /* the loop's stalls (STATUS loop_stall_*), NULL if none */
    broker_reqstats_t reqstats;         /* answers to clients, for /metrics (metrics.c) */
    struct zc_ops *ops;                 /* --http: /metrics, /healthz, /readyz; NULL if off */
    struct backup *backup;              /* backup.c's copy in flight, NULL if none */
    zc_map_t *forwards; /* forward.c: session+seq -> request relayed to the leader */
    zc_dq_t forward_q;  /* forward.c: those by expiry */
    uint64_t forwarded; /* requests relayed to the leader (metrics) */
} broker_t;

/* Shorthands for the ports. */
static inline void broker__info(broker_t *b, zc_node_info_t *out) { b->io->info(b, out); }
static inline bool broker__ready(broker_t *b) { return b->io->ready(b); }
static inline zc_state_t *broker__state(broker_t *b) { return b->io->state(b); }
static inline bool broker__member(broker_t *b, uint64_t id, zc_replica_t *out)
{
    return b->io->member(b, id, out);
}
static inline unsigned broker__configuration(broker_t *b, uint64_t *ids, const char **roles,
                                             unsigned max)
{
    return b->io->configuration(b, ids, roles, max);
}
static inline void broker__propose(broker_t *b, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg)
{
    b->io->propose(b, cmd, cb, arg);
}

/* io.c: one of the two ROUTERs -- CURVE server (lib/zsec.h), hwm frames
 * each way per connection, bound and watched on the loop. */
typedef struct {
    const char *what;     /* "client" or "cart", for the error */
    const char *endpoint; /* where it binds */
    const char *roles;    /* the key roles it admits at the handshake (zc_sec_server) */
    int hwm;              /* ZMQ_SNDHWM and ZMQ_RCVHWM */
    void (*setup)(broker_t *b, void *sock); /* more options before the bind, or NULL */
    zc_watch_cb on_readable;                /* called with (socket, b) */
    void **sock;                            /* out: the socket (b->front, b->back) */
    zc_watch_t **watch;                     /* out: its watcher */
} broker__router_t;
/* 0, or -1 with err ("WHAT endpoint EP: why"); the caller closes either way. */
int broker__router_open(broker_t *b, const broker__router_t *r, char *err, size_t errlen);
void broker__router_close(void **sock, zc_watch_t **watch);

/* broker.c: the core's lifecycle.  broker__init needs b->cfg set and the
 * rest zeroed; -1 out of memory.  broker__destroy answers what still waits. */
int broker__init(broker_t *b, const broker_io_t *io);
void broker__destroy(broker_t *b);
/* Raft's role or readiness changed: dispatch or refuse parked requests,
 * build or forget the leader-only caches. */
void broker__role_changed(broker_t *b);
/* The periodic work: expiries, liveness, leases, purges, drain retries. */
void broker__tick(broker_t *b, uint64_t now_us);

/* metrics.c: /metrics and /readyz (--http) */
/* Count one answer to a client; started_us 0: answered at once (not timed). */
void broker__metrics_request(broker_t *b, int op, int status, uint64_t started_us);
int broker__metrics_open(broker_t *b, const char *addr, char *err, size_t errlen);
void broker__metrics_close(broker_t *b);

/* frontend.c: client side */
int broker__frontend_open(broker_t *b, char *err, size_t errlen);
void broker__frontend_close(broker_t *b);
/* Send a REPLY (m) to a client routing id. */
void broker__frontend_send(broker_t *b, const uint8_t *client, size_t client_len,
                           const zc_msg_t *m);
/* Reply KO to a request with no cart involved. */
void broker__frontend_reply_ko(broker_t *b, const uint8_t *client, size_t client_len,
                               const zc_msg_t *req, int status, const char *detail);
/* NOT_LEADER with the leader's client endpoint or "unknown". */
void broker__frontend_reply_not_leader(broker_t *b, const uint8_t *client, size_t client_len,
                                       const zc_msg_t *req);

/* The leader's client endpoint, or "unknown" (also when this is the leader). */
void broker__leader_endpoint(broker_t *b, char out[ZC_ADDR_MAX + 1]);

/* Send an ADMIN_REPLY. */
void broker__frontend_admin_reply(broker_t *b, const uint8_t *client, size_t client_len,
                                  uint64_t corr, int status, const char *detail);

/* admin.c: ADMIN requests (membership, leadership) */
void broker__admin_request(broker_t *b, const uint8_t *client, size_t client_len,
                           const zc_msg_t *m);
/* route.c: the decision procedure for one client REQUEST */
void broker__route_request(broker_t *b, const uint8_t *client, size_t client_len,
                           const zc_msg_t *req);
/* A CART_REPLY arrived from a node. */
void broker__route_cart_reply(broker_t *b, const char *node, const zc_msg_t *m);
/* A node said HELLO (node), or the tick (NULL: any node): forward the
 * requests waiting for that node's connection. */
void broker__route_node_connected(broker_t *b, const char *node);
/* Role or readiness changed: dispatch or refuse parked requests. */
void broker__route_role_changed(broker_t *b);
/* Expire waits that ran out; called from the tick. */
void broker__route_expire(broker_t *b, uint64_t now_us);
/* Answer and free every breq (shutdown). */
void broker__route_abort_all(broker_t *b);
/* The lifecycle's table: may a request move from `from` to `to`? */
bool broker__route_breq_may(breq_state_t from, breq_state_t to);
const char *broker__route_breq_state_name(breq_state_t s);

/* backend.c: cart side */
int broker__backend_open(broker_t *b, char *err, size_t errlen);
void broker__backend_close(broker_t *b);
/* Send m to a cart node; -1 if the node is not connected. */
int broker__backend_send(broker_t *b, const char *node, const zc_msg_t *m);

/* drain.c: released carts -> RESET -> RESET_DONE -> RETURN */
void broker__drain_cart(broker_t *b, const char *cart, uint64_t generation);
void broker__drain_scan(broker_t *b, uint64_t now_us, bool force);
/* A RESET_DONE from `node`: the cart it names was emptied at that generation
 * (a drain's reset: RETURN; a free cart's probe: liveness.c). */
void broker__reset_done(broker_t *b, const char *node, const zc_msg_t *m);
void broker__drain_forget_all(broker_t *b);
/* Forget what the leader keeps about one cart (it was unregistered). */
void broker__drain_forget_cart(broker_t *b, const char *cart);

/* Split "node.slot"; false if malformed. */
bool broker__split_cart(const char *cart, char node[ZC_NODE_MAX + 1], uint16_t *slot);

#endif
