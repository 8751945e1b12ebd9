/* internal: libzcart's private structs and the pieces its files share.
 *
 * Public names are zcart_*, internal ones shared between files zcart__*,
 * file-local ones unprefixed (libuv style).  Unit tests include this header
 * to drive the internals (seq rule, call engine) directly. */
#ifndef ZC_CLIENT_INTERNAL_H
#define ZC_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "client/failover.h"
#include "client/zcart.h"
#include "proto/msg.h"

/* A client (zcart.h). */
struct zcart {
    zcart_options_t opt; /* effective options, every default filled in */
    void *ctx;           /* ZeroMQ context */
    bool own_ctx;        /* ctx was created here; zcart_destroy terminates it */
    zcf_list_t list;     /* known replicas; list.cur = where the next call starts */
    zcf_conn_t conn;     /* connection to list.eps[list.cur], or closed */
    uint64_t rng;        /* xorshift state for backoff jitter */
    uint64_t next_corr;  /* corr of the next STATUS or ADMIN */
    char *brokers;       /* the broker list given (owned), for keepers */
    uint64_t conn_id;    /* raft id of the replica at list.cur, as a probe learned it; 0:
                            unknown (call.c, "the leader directly") */
    size_t conn_id_at;   /* the list index conn_id is about */
    bool probe;          /* an answer came from another replica than the one asked:
                            probe before the next cart op */
    uint64_t probe_term; /* the term of that answer */
    uint64_t probed_term; /* the term of the last probe: one per term at most */
    char keys[3][41];    /* copies of opt's server, public and secret keys */
};

/* A session (zcart.h). */
struct zcart_session {
    zcart_t *z;                       /* client, borrowed */
    uint8_t id[ZC_SESSION_LEN];       /* the 128-bit id, never all zero */
    char hex[2 * ZC_SESSION_LEN + 1]; /* id as lowercase hex */
    uint64_t last_seq;                /* last seq sent, 0 if none */
    uint64_t use_seq;                 /* the next cart op's seq (zcart_session_use_seq),
                                              0: the seq rule */
    zcart_keeper_t *keeper;           /* renews the lease (opt.keepalive_ms), or NULL */
};

/* The seq rule: max(last + 1, now_us).  Always > last. */
uint64_t zcart__next_seq(uint64_t last, uint64_t now_us);
/* Wall clock in microseconds since the Unix epoch. */
uint64_t zcart__wall_us(void);
/* Next pseudo-random value of z's generator. */
uint64_t zcart__rand(zcart_t *z);

/* One call for the engine: what to send, how to recognise its answer and
 * whether an unanswered try may be sent again. */
typedef struct {
    const void *frame;      /* the encoded message, sent unchanged on every try */
    size_t len;             /* its length */
    uint8_t reply_id;       /* ZC_MSG_REPLY or ZC_MSG_ADMIN_REPLY */
    const uint8_t *session; /* REPLY: the session it must carry */
    uint64_t seq;           /* REPLY: the seq it must carry */
    uint64_t corr;          /* ADMIN_REPLY: the corr it must carry */
    bool resend;            /* true: resend after a try that got no answer */
    int attempt_ms;         /* wait per try; 0: the attempt timeout option */
} zcart__call_t;

/* Run one call with failover (the policy is in call.c).  ZCART_ANSWERED:
 * *reply holds the final answer (the caller resets it).  Otherwise
 * ZCART_EUNREACHABLE or ZCART_ESYS with res->reason, res->detail and
 * res->in_doubt set.  res->attempts and res->replica are set either way. */
int zcart__call(zcart_t *z, const zcart__call_t *c, zc_msg_t *reply, zcart_result_t *res);

#endif
