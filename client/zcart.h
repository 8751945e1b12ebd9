/* zcart.h: libzcart, the client library of the zcart cart broker.
 *
 * A client holds one zcart_t per thread.  It knows the client endpoints of
 * every broker replica and talks to one replica at a time over a ZeroMQ
 * DEALER (docs/protocol.md §3).  A call such as zcart_add() blocks until
 * the cluster answers or the call's time budget runs out, failing over
 * between replicas on its own:
 *
 *     zcart_t *z = zcart_new("tcp://127.0.0.1:7021,tcp://127.0.0.1:7022", NULL);
 *     zcart_session_t *s = zcart_session_new(z);
 *     zcart_result_t r = {0};
 *     if (zcart_add(s, "apple", 3, &r) == ZCART_ANSWERED && r.status == ZCART_STATUS_OK)
 *         printf("cart %s holds %zu products\n", r.cart, r.n_items);
 *     zcart_close(s, &r);
 *     zcart_result_clear(&r);
 *     zcart_session_destroy(&s);
 *     zcart_destroy(&z);
 *
 * Failover.  A call sends one REQUEST and waits for the REPLY carrying the
 * same (session, seq); any other reply is a late answer to an earlier try
 * and is discarded.  NOT_LEADER naming an endpoint: switch there at once
 * (it joins the list if unknown) and resend.  NOT_LEADER "unknown" or
 * UNAVAILABLE: wait a growing backoff, then try the next replica.  No answer
 * within the attempt timeout, or the connection drops (the DEALER is
 * watched with zmq_socket_monitor, so a killed leader is seen in
 * milliseconds), or the connection is refused: close the socket and resend
 * to the next replica.  Every resend carries the same (session, seq) and the
 * same deadline, so the cluster applies the operation at most once however
 * many tries it took.  The replica that answered last is remembered for the
 * next call.
 *
 * Sequence numbers are max(last seq + 1, wall-clock microseconds): two
 * processes sharing a session (the zcart CLI runs one process per command)
 * still send increasing seqs as long as the wall clock does not step back.
 *
 * Threads: a zcart_t and its sessions are used by one thread at a time;
 * different zcart_t may be used by different threads at once (they may
 * share a ZeroMQ context, see zcart_options_t.zmq_context).
 *
 * Ownership: every pointer returned by this library is owned by it unless
 * a comment says otherwise; strings passed in are copied. */
#ifndef ZCART_H
#define ZCART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZCART_API __attribute__((visibility("default")))

/* Limits, equal to the protocol's (docs/protocol.md §2). */
#define ZCART_PRODUCT_MAX 64   /* octets of a product id */
#define ZCART_CART_MAX 64      /* octets of a cart id */
#define ZCART_DETAIL_MAX 255   /* octets of a detail text */
#define ZCART_KEY_MAX 64       /* octets of a prop key */
#define ZCART_VALUE_MAX 255    /* octets of a prop value */
#define ZCART_COMMAND_MAX 32   /* octets of an admin command name */
#define ZCART_ENDPOINT_MAX 255 /* octets of a ZeroMQ endpoint */
#define ZCART_QTY_MAX 1000000  /* units of one add or remove */
#define ZCART_SESSION_HEX 32   /* hex digits of a session id */
#define ZCART_MAX_REPLICAS 64  /* endpoints a client keeps */

/* Defaults of zcart_options_t (a field left 0 takes these). */
#define ZCART_DEFAULT_ATTEMPT_TIMEOUT_MS 1000
#define ZCART_DEFAULT_TOTAL_TIMEOUT_MS 5000
#define ZCART_DEFAULT_BACKOFF_MS 50
#define ZCART_DEFAULT_BACKOFF_MAX_MS 500
#define ZCART_DEFAULT_ELECTION_BACKOFF_MS 10
#define ZCART_DEFAULT_STATUS_TIMEOUT_MS 1000

/* Protocol status codes (docs/protocol.md §5; the same numbers as
 * proto/status.h, which a unit test checks). */
enum {
    ZCART_STATUS_OK = 0,
    ZCART_STATUS_BAD_REQUEST = 1,
    ZCART_STATUS_NOT_LEADER = 2,
    ZCART_STATUS_NO_FREE_CART = 3,
    ZCART_STATUS_OUT_OF_STOCK = 4,
    ZCART_STATUS_UNKNOWN_PRODUCT = 5,
    ZCART_STATUS_STOCK_TIMEOUT = 6,
    ZCART_STATUS_STOCK_UNAVAILABLE = 7,
    ZCART_STATUS_CART_UNAVAILABLE = 8,
    ZCART_STATUS_SESSION_EXPIRED = 9,
    ZCART_STATUS_EXPIRED = 10,
    ZCART_STATUS_NOT_IN_CART = 11,
    ZCART_STATUS_SESSION_CLOSED = 12,
    ZCART_STATUS_CART_LOST = 13,
    ZCART_STATUS_FENCED = 14,
    ZCART_STATUS_INTERNAL = 15,
    ZCART_STATUS_UNAVAILABLE = 16,
    ZCART_STATUS_STORAGE_FULL = 17, /* no new session (state) / no add (cart node) */
    ZCART_STATUS_BUSY = 18,         /* admission control; retried within the budget */
    ZCART_STATUS_FORBIDDEN = 19,    /* the caller's key may not do this (admin) */
};

/* What a call returns.  Only ZCART_ANSWERED means the cluster answered;
 * whether it said OK or KO is then in the result's `status`. */
typedef enum {
    ZCART_ANSWERED = 0,      /* answered: OK or KO, see zcart_result_t.status */
    ZCART_EINVAL = -1,       /* invalid arguments; nothing was sent */
    ZCART_EUNREACHABLE = -2, /* no answer within the budget; see .in_doubt */
    ZCART_ESYS = -3,         /* local failure (memory, ZeroMQ); .detail says which */
} zcart_rc_t;

/* Call options.  Zero-initialise and set what you need: every field left 0
 * (or false, or NULL) takes its documented default. */
typedef struct {
    int attempt_timeout_ms;  /* wait for one try at one replica; default 1000 */
    int total_timeout_ms;    /* budget of a whole call, tries and backoffs included
                               (no try but the first starts with under 20 ms of it
                               left: it would only leave the outcome in doubt);
                               default 5000 */
    int backoff_ms;          /* first wait after UNAVAILABLE or BUSY (and after a round
                               of quick hops), then x1.5 per wait (with up to 25%
                               jitter); default 50 */
    int backoff_max_ms;      /* cap of that growing wait; default 500 */
    int election_backoff_ms; /* first wait after NOT_LEADER "unknown" (an election
                               is running: a new leader is usually there within
                               tens of ms), then x1.5 per wait up to
                               backoff_max_ms; default 10 */
    int status_timeout_ms;   /* zcart_status: wait per replica (all are asked at
                               once); default 1000, never above the total budget */
    bool no_deadline;        /* true: requests carry deadline 0 (never EXPIRED);
                               default false: deadline = call start + total budget */
    void *zmq_context;       /* ZeroMQ context to use, borrowed (must outlive the
                               zcart_t); NULL: the zcart_t creates and owns one */
    int keepalive_ms;        /* > 0: every session object keeps its lease alive on
                               its own -- a keeper thread (below) renews it every
                               keepalive_ms from its creation until it is closed
                               or destroyed; default 0: only requests renew it */
    const char *server_key;  /* the cluster's public key, 40 z85 characters: every
                               connection is CurveZMQ to exactly this key, so a
                               redirect to an endpoint without it fails closed
                               (no answer); NULL: plain sockets, for an --insecure
                               cluster only (docs/security.md) */
    const char *public_key;  /* this client's public key, z85 (with server_key) */
    const char *secret_key;  /* this client's secret key, z85 (with server_key) */
} zcart_options_t;

/* One product line of a cart. */
typedef struct {
    char product[ZCART_PRODUCT_MAX + 1]; /* product id */
    uint32_t qty;                        /* units, > 0 */
} zcart_item_t;

/* One key/value pair (status and admin props). */
typedef struct {
    char key[ZCART_KEY_MAX + 1];     /* key */
    char value[ZCART_VALUE_MAX + 1]; /* value as text */
} zcart_prop_t;

/* The outcome of one call.  Zero-initialise before first use; every call
 * clears it first (freeing what a previous call left), and
 * zcart_result_clear frees it for good. */
typedef struct {
    int status;                           /* protocol status (0 OK, else the KO reason);
                                            -1 when the call returned no answer */
    const char *reason;                   /* static: "OK", "OUT_OF_STOCK", ...; or
                                            "INVALID", "UNREACHABLE", "LOCAL_ERROR" */
    char detail[ZCART_DETAIL_MAX + 1];    /* the KO explanation, or why no answer */
    char cart[ZCART_CART_MAX + 1];        /* the session's cart "<node>.<slot>", or "" */
    uint64_t generation;                  /* the cart's generation, 0 if none */
    zcart_item_t *items;                  /* owned: cart contents after the op, when
                                            the cart handled it */
    size_t n_items;                       /* entries in items */
    zcart_prop_t *props;                  /* owned: admin reply props (cart ops: none) */
    size_t n_props;                       /* entries in props */
    uint64_t seq;                         /* the seq the call used (cart ops) */
    unsigned attempts;                    /* tries sent, retries included */
    bool in_doubt;                        /* ZCART_EUNREACHABLE: a try may have reached
                                            the leader, so the op may have been
                                            applied; false: surely not applied */
    char replica[ZCART_ENDPOINT_MAX + 1]; /* endpoint that answered, or last tried */
    uint64_t replica_id;                  /* cart ops: id of the replica that decided the
                                            answer (REPLY replica), 0 if no answer */
    uint64_t term;                        /* cart ops: raft term in which it decided it as a
                                            ready leader; 0: not a ready leader's answer */
} zcart_result_t;

/* What one replica said to STATUS. */
typedef struct {
    char endpoint[ZCART_ENDPOINT_MAX + 1]; /* the endpoint asked */
    bool reachable;                        /* it answered in time */
    char error[128];                       /* why not, when !reachable */
    uint64_t rtt_us;                       /* round trip, when reachable */
    zcart_prop_t *props;                   /* owned: every prop, in received order */
    size_t n_props;                        /* entries in props */
} zcart_replica_t;

/* zcart_status's answer: one entry per replica the client knows. */
typedef struct {
    zcart_replica_t *replicas; /* owned, in the client's endpoint order */
    size_t n_replicas;         /* entries in replicas */
} zcart_status_t;

typedef struct zcart zcart_t;
typedef struct zcart_session zcart_session_t;

/* --- client ------------------------------------------------------------ */

/* A client for the cluster whose replicas' client endpoints are listed in
 * `brokers`, comma-separated ("tcp://127.0.0.1:7021,tcp://127.0.0.1:7022";
 * blanks around commas are ignored).  opt may be NULL (all defaults); it is
 * copied.  NULL with errno EINVAL if brokers or an option is invalid
 * (zcart_brokers_check says why), ENOMEM, or a ZeroMQ errno. */
ZCART_API zcart_t *zcart_new(const char *brokers, const zcart_options_t *opt);
/* Close the sockets (unsent data is dropped), free, and set *p to NULL.
 * Sessions of the client must be destroyed first. */
ZCART_API void zcart_destroy(zcart_t **p);
/* Fill o with the defaults (the same as a zero-initialised struct). */
ZCART_API void zcart_options_default(zcart_options_t *o);
/* True if `brokers` is a usable endpoint list; else false and a reason in
 * why (may be NULL). */
ZCART_API bool zcart_brokers_check(const char *brokers, char *why, size_t whylen);
/* The endpoint the next call starts with (borrowed, valid until the next
 * call on z). */
ZCART_API const char *zcart_current_endpoint(const zcart_t *z);

/* --- sessions ---------------------------------------------------------- */

/* A new session with a fresh random 128-bit id.  z is borrowed and must
 * outlive the session.  NULL on allocation failure. */
ZCART_API zcart_session_t *zcart_session_new(zcart_t *z);
/* A session object for an existing id (32 hex digits, not all zero).  NULL
 * with errno EINVAL if the id is malformed. */
ZCART_API zcart_session_t *zcart_session_attach(zcart_t *z, const char *hex_id);
/* Free and set *p to NULL.  Sends nothing: close the session first with
 * zcart_close if its cart should be released. */
ZCART_API void zcart_session_destroy(zcart_session_t **p);
/* The id as 32 lowercase hex digits (borrowed, lives as long as s). */
ZCART_API const char *zcart_session_id(const zcart_session_t *s);
/* The last seq this object sent, 0 if none. */
ZCART_API uint64_t zcart_session_last_seq(const zcart_session_t *s);
/* The next cart operation on s carries exactly seq instead of the seq rule
 * (a retry of an operation whose (session, seq) the caller kept -- the REST
 * gateway's Idempotency-Key -- is then answered from the cluster's dedup
 * record, applied at most once).  -1 with errno EINVAL for seq 0. */
ZCART_API int zcart_session_use_seq(zcart_session_t *s, uint64_t seq);

/* --- cart operations ------------------------------------------------------
 * Each returns a zcart_rc_t and fills res (which must be zeroed or used
 * before).  product must be a protocol product id (1..64 octets of
 * printable ASCII, no space, no comma) and qty 1..1000000, else
 * ZCART_EINVAL and nothing is sent. */

/* Add qty units (the session's first add assigns it a cart). */
ZCART_API int zcart_add(zcart_session_t *s, const char *product, uint32_t qty, zcart_result_t *res);
/* Remove qty units. */
ZCART_API int zcart_remove(zcart_session_t *s, const char *product, uint32_t qty,
                           zcart_result_t *res);
/* The cart's contents. */
ZCART_API int zcart_list(zcart_session_t *s, zcart_result_t *res);
/* End the session: its cart is released (emptied, then freed). */
ZCART_API int zcart_close(zcart_session_t *s, zcart_result_t *res);
/* Renew the session's lease without touching its cart (the broker answers
 * it; --session-ttl on the brokers).  Every other operation renews it too.
 * OK for a session without a cart (nothing to keep); SESSION_CLOSED or
 * SESSION_EXPIRED once it ended. */
ZCART_API int zcart_keepalive(zcart_session_t *s, zcart_result_t *res);

/* --- keeping a session alive on its own -----------------------------------
 * A keeper sends zcart_keepalive for one session every interval_ms from a
 * thread of its own, with its own connection (brokers and opt as for
 * zcart_new; opt may be NULL), so an application that sits idle -- a shell
 * waiting for input -- keeps its cart.  It stops renewing once the session
 * ended; zcart_keeper_stop joins the thread and frees it. */
typedef struct zcart_keeper zcart_keeper_t;
ZCART_API zcart_keeper_t *zcart_keeper_start(const char *brokers, const zcart_options_t *opt,
                                             const char *session_hex, int interval_ms);
/* Stop (waits for a keepalive in progress), free, set *p to NULL. */
ZCART_API void zcart_keeper_stop(zcart_keeper_t **p);
/* Keepalives the keeper sent and got OK for (for tests and diagnostics). */
ZCART_API unsigned zcart_keeper_renewals(zcart_keeper_t *k);

/* Free what res owns and zero it. */
ZCART_API void zcart_result_clear(zcart_result_t *res);
/* True if (product, qty) may be sent; else false and why (may be NULL). */
ZCART_API bool zcart_item_check(const char *product, long long qty, char *why, size_t whylen);
/* "ANSWERED", "INVALID", "UNREACHABLE", "LOCAL_ERROR". */
ZCART_API const char *zcart_rc_name(int rc);
/* Protocol status name ("OUT_OF_STOCK"), "UNKNOWN" outside the table. */
ZCART_API const char *zcart_status_name(int status);

/* --- cluster status -------------------------------------------------------- */

/* Ask every known replica for STATUS at once, each with the status timeout.
 * Fills st (zero it before first use; it is cleared first).  Returns
 * ZCART_ANSWERED if at least one replica answered, ZCART_EUNREACHABLE if
 * none did, ZCART_ESYS on a local failure. */
ZCART_API int zcart_status(zcart_t *z, zcart_status_t *st);
/* Free what st owns and zero it. */
ZCART_API void zcart_status_clear(zcart_status_t *st);
/* A replica's prop by key (borrowed), or NULL. */
ZCART_API const char *zcart_replica_prop(const zcart_replica_t *r, const char *key);

/* --- administration ---------------------------------------------------------- */

/* Send ADMIN `command` with props (copied; n_props <= 512) to the leader:
 * NOT_LEADER redirects are followed and a replica that cannot be connected
 * is skipped, but a try that may have been delivered and got no answer is
 * NOT resent (admin commands are not deduplicated by the cluster): it
 * returns ZCART_EUNREACHABLE with in_doubt set.  The whole budget may be spent waiting for one answer.  The
 * reply's status, detail and props land in res.  Which commands exist is the
 * broker's business (docs/protocol.md). */
ZCART_API int zcart_admin(zcart_t *z, const char *command, const zcart_prop_t *props,
                          size_t n_props, zcart_result_t *res);

#ifdef __cplusplus
}
#endif

#endif
