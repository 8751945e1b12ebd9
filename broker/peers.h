/* peers: notice at once when another replica's process dies.
 *
 * Raft alone learns that a leader died only when its election timer runs
 * out, and raft 0.15 followers refuse votes while they still remember a
 * leader, so a failover costs two election rounds.  But when a process dies,
 * the kernel resets its TCP connections immediately.  So each replica keeps
 * one idle DEALER connected to every other replica's client endpoint and a
 * ZeroMQ socket monitor on it; a DISCONNECTED event from the replica it
 * follows is passed to zc_node_peer_gone, which starts a prompt, staggered
 * election.  A paused or partitioned leader sends no reset: raft's own
 * timeouts cover those. */
#ifndef ZC_BROKER_PEERS_H
#define ZC_BROKER_PEERS_H

#include "broker/internal.h"

typedef struct peers peers_t;

peers_t *broker__peers_new(broker_t *b);
/* Re-read the raft configuration and connect to members not watched yet. */
void broker__peers_sync(peers_t *p);
void broker__peers_destroy(peers_t **p);
/* Send one frame to replica `id` over the idle connection (forward.c):
 * 0, or -1 when there is no live connection to it (nothing is queued). */
int broker__peers_send(peers_t *p, uint64_t id, const void *data, size_t len);

#endif
