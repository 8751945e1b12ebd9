/* forward: any replica serves -- a follower relays client requests to the
 * leader and the leader's answers back.
 *
 * A client that reaches only followers (cut from the leader, or given one
 * replica's endpoint) would otherwise get NOT_LEADER naming an endpoint it
 * cannot reach, and stall until the partition heals.  So a follower that
 * knows a leader and holds a live connection to it (peers.c keeps one
 * DEALER to every other replica's client port, with routing id
 * "zc-replica-ID") sends the REQUEST frame as it came, and remembers
 * (session, seq) -> the asker's routing id, one per copy sent (the leader
answers each copy, so each asker gets one answer); the leader treats it like any
 * client's request -- dedup by (session, seq) included, so exactly-once
 * holds however often a request is relayed or retried -- and answers the
 * follower, which passes the REPLY on unchanged (it names the deciding
 * replica and term).
 *
 * Bounded: at most BROKER_FORWARDS_MAX relayed requests wait at once (more
 * get NOT_LEADER as before); one not answered within --cart-timeout twice
 * over is answered UNAVAILABLE (the client retries).  A request that came
 * from another replica is never relayed again (no loops): a replica that is
 * not the leader answers it NOT_LEADER. */
#ifndef ZC_BROKER_FORWARD_H
#define ZC_BROKER_FORWARD_H

#include "broker/internal.h"

#define BROKER_FORWARDS_MAX 4096
/* Routing id prefix of a replica's peer connections (peers.c). */
#define BROKER_PEER_ID_PREFIX "zc-replica-"

/* Relay a valid REQUEST (raw frame data/len) to the leader: true if it was
 * sent (the answer comes later), false if this replica leads, knows no
 * leader, has no live connection to it, or the request came from a replica. */
bool broker__forward_request(broker_t *b, const uint8_t *client, size_t client_len,
                             const zc_msg_t *req, const void *data, size_t len);
/* A frame from the leader on a peer connection: pass a REPLY on. */
void broker__forward_reply(broker_t *b, const void *data, size_t len);
/* Answer UNAVAILABLE the relayed requests that waited too long. */
void broker__forward_expire(broker_t *b, uint64_t now_us);
/* Replica `id`'s connection dropped (peers.c): the requests relayed to it
 * may never be answered; answer them UNAVAILABLE now, so their clients
 * retry at once instead of waiting out their attempt timeout. */
void broker__forward_peer_gone(broker_t *b, uint64_t id);
/* Forget every relayed request (stop). */
void broker__forward_forget_all(broker_t *b);

#endif
