/* transport: raft's connections carried over CurveZMQ by a relay on the
 * same libuv loop (a custom struct raft_uv_transport for raft 0.15).
 *
 * Why.  raft_uv_tcp has no authentication: whoever reaches the raft port
 * can send RequestVote, AppendEntries or InstallSnapshot, and raft
 * allocates whatever 64-bit length a peer announces.  This transport keeps
 * raft's own encoding and I/O code (uv_send.c, uv_recv.c) and replaces only
 * the byte pipe underneath, as dqlite does with its own transport.
 *
 * Shape.  raft asks the transport for connections (connect) and is told
 * about incoming ones (the accept callback).  Each of these is one end of a
 * socketpair(): raft reads and writes it as an ordinary uv_stream (a
 * uv_pipe_open'ed fd) and never sees the network.  The relay holds the
 * other end:
 *
 *   raft (A) --socketpair--> relay (A) ==CurveZMQ DEALER/ROUTER==> relay (B)
 *       --socketpair--> raft (B)
 *
 * raft 0.15 writes only on connections it opened and reads only on
 * connections it accepted, so data flows one way per stream: the relay reads
 * raft's outgoing bytes, cuts them at raft message boundaries (it knows
 * raft's framing, zc_raft_msg_size) and sends each whole raft message as one
 * ZeroMQ multipart message [relay header][raft message in parts of at most
 * ZC_RELAY_CHUNK bytes] on a DEALER connected to the peer's raft address.
 * The peer's ROUTER, bound on that same address (so the raft port, deploy
 * scripts and firewall rules stay as they were), checks the sender, checks
 * the message and writes it to the accepted stream for (sender process,
 * stream id), opening that stream first -- and calling raft's accept
 * callback with the sender's raft id and address from the header -- if it
 * is new.  Wire format: docs/protocol.md, "Raft relay".
 *
 * Authentication.  Both sockets are made in czmq's context (zc_sec_context:
 * zauth guards only that context); the ROUTER is a CURVE server, the
 * DEALER a CURVE client of the replicas' shared key.  zauth admits the keys
 * of the process's allow-list, and every message whose connection's "role"
 * is not "replica" is dropped before anything is parsed (counted, logged):
 * without a replica key no byte reaches raft.  --insecure: the same relay
 * without CURVE and without the role check (one code path; anyone who
 * reaches the port can then talk to raft, as with every other port).
 *
 * Bounds.  The ROUTER's ZMQ_MAXMSGSIZE (ZC_ZMQ_MAXMSG, per frame) makes
 * libzmq drop a connection announcing a larger frame before allocating it.
 * raft's own length fields -- the 64-bit header length in every message's
 * preamble, each entry's 32-bit length and an InstallSnapshot's 64-bit data
 * length, which uv_recv.c allocates as announced -- are checked by
 * zc_raft_msg_size against the transport's max_msg before raft sees them;
 * a message whose lengths do not add up to exactly what arrived, or exceed
 * the bound, is dropped.  So no peer, even one holding the replica key, can
 * make raft allocate more than max_msg per message or read a header shorter
 * than its type needs.
 *
 * Restarts (issue 9, item 9).  With raft_uv_tcp a follower's outgoing TCP
 * connection to a peer that restarted stays in place (raft never reads it)
 * until the next write, which the dead kernel socket eats: that write is
 * typically the first vote of the next election.  Here raft's connections
 * never end on their own: each relay message is a whole raft message that
 * names its stream and sender, so the DEALER, reconnected by ZeroMQ to the
 * peer's new process, delivers the next message there and the new process
 * opens a fresh accepted stream that starts on a message boundary -- it
 * can never be misparsed as the middle of an old stream.  The other
 * direction: every message carries the sender's incarnation (random per
 * process); when a sender's incarnation changes, the streams from its
 * previous process are closed at once (logged "raft peer N restarted").
 * A DEALER whose connection drops (socket monitor) also closes the
 * accepted streams from that peer.  ZMQ_IMMEDIATE: nothing is queued for a
 * peer that is not connected (raft resends), so a restarted peer never gets
 * a backlog of stale messages; and so that a brand-new DEALER's first
 * message (typically a vote) is not dropped that way, raft's connect to an
 * address completes only once that DEALER's first handshake succeeded
 * (socket monitor, ZMQ_EVENT_HANDSHAKE_SUCCEEDED; raft queues meanwhile).
 *
 * Lifetimes: zc_transport_init, then raft_uv_init(io, ..., t); raft calls
 * init/listen/connect/close.  The close frees the relay once its handles are
 * closed; zc_transport_close_unused frees a transport raft never used. */
#ifndef ZC_REPLICATION_TRANSPORT_H
#define ZC_REPLICATION_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/zsec.h"

/* Largest ZeroMQ frame of a raft message the relay sends. */
#define ZC_RELAY_CHUNK (256 * 1024)
/* Relay header version. */
#define ZC_RELAY_VERSION 1
/* Relay header kinds. */
#define ZC_RELAY_DATA 'D'  /* a whole raft message follows */
#define ZC_RELAY_CLOSE 'C' /* the sender's raft closed this stream */
/* Longest raft address carried in a relay header. */
#define ZC_RELAY_ADDR_MAX 255
/* Bytes of a relay header before the address. */
#define ZC_RELAY_HDR_FIXED 27

typedef struct {
    uv_loop_t *loop;     /* raft's loop */
    void *zctx;          /* ZeroMQ context: zc_sec_context() */
    const zc_sec_t *sec; /* keys; NULL or insecure: no CURVE, no role check */
    const zc_sec_t *raft_sec; /* this replica's own raft key (role raft, name its id), or
                                 NULL: the shared replica key speaks for any raft id */
    uint64_t max_msg;    /* largest raft message accepted, bytes (preamble included) */
    void (*peer_restarted)(void *arg, uint64_t id); /* a peer's new process spoke (NULL: none) */
    void *peer_restarted_arg;                       /* its argument */
} zc_transport_config_t;

/* Makes `t` a relay transport (t->impl).  0, or -1 (out of memory). */
int zc_transport_init(struct raft_uv_transport *t, const zc_transport_config_t *cfg);
/* Frees a transport whose close raft never started. */
void zc_transport_close_unused(struct raft_uv_transport *t);

/* What the relay saw, for logs and tests. */
typedef struct {
    uint64_t forbidden;  /* messages dropped: the sender's key is not a replica's, or
                            (raft keys) not the raft id the message says it is from */
    uint64_t malformed;  /* messages dropped: bad relay header or raft framing */
    uint64_t opened;     /* accepted streams opened */
    uint64_t restarts;   /* peers seen with a new incarnation */
    uint64_t dropped;    /* outgoing raft messages dropped (peer not connected) */
} zc_transport_stats_t;
void zc_transport_stats(struct raft_uv_transport *t, zc_transport_stats_t *out);

/* --- pure framing, exposed for tests/unit/test_transport.c --- */

/* Given the first `len` bytes of a raft 0.15 message (uv_encoding.c:
 * preamble [type u64][header length u64], header, payload), is its total
 * size known?  1: yes, *total set (preamble + header + payload, at most
 * max); 0: need more bytes (a prefix of a valid message so far); -1: not a
 * valid raft message or larger than max. */
int zc_raft_msg_size(const uint8_t *p, size_t len, uint64_t max, uint64_t *total);

/* One relay header (frame 0 of every relay message). */
typedef struct {
    uint8_t kind;                         /* ZC_RELAY_DATA or ZC_RELAY_CLOSE */
    uint64_t stream;                      /* sender's stream id */
    uint64_t sender;                      /* sender's raft id */
    uint64_t incarnation;                 /* sender's process incarnation */
    char address[ZC_RELAY_ADDR_MAX + 1];  /* sender's raft address */
} zc_relay_hdr_t;

/* Encodes into out (n bytes); returns the length, 0 if it does not fit. */
size_t zc_relay_hdr_encode(const zc_relay_hdr_t *h, uint8_t *out, size_t n);
/* Decodes exactly n bytes; 0, or -1 when malformed. */
int zc_relay_hdr_decode(const uint8_t *p, size_t n, zc_relay_hdr_t *h);

#endif
