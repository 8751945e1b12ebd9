/* registry: cart nodes as the leader sees them.
 *
 * A HELLO lists a node's slots.  Slots the replicated cart registry lacks are
 * registered by one committed REGISTER per node at a time (an empty slot
 * joins the free list, one that still holds an owner or items is registered
 * draining so it is reset first).  Registered carts whose slots the HELLO
 * no longer lists (the node restarted with fewer --slots) are orphans: one
 * committed UNREGISTER per node at a time forgets them (a session holding
 * one moves to a free cart and is told CART_LOST, or ends as EXPIRED when
 * none is free), so none of them stays DRAINING, reset in vain, for ever.  The per-node record kept here (last HELLO
 * time, a REGISTER in flight) is volatile and rebuilt from HELLOs. */
#ifndef ZC_BROKER_REGISTRY_H
#define ZC_BROKER_REGISTRY_H

#include "broker/internal.h"

void broker__registry_hello(broker_t *b, const zc_msg_t *hello);
/* The node's record, created if missing (NULL: out of memory). */
node_info_t *broker__registry_node(broker_t *b, const char *name);
/* The node map is full (BROKER_NODES_MAX): drop the names that have no
 * registered cart and sent no HELLO for --cart-liveness (a node an
 * operator removed).  True if there is room now. */
bool broker__registry_make_room(broker_t *b);
/* admin remove-cart-node: commit UNREGISTER of every cart of `node`; cb
 * gets the command's result.  The leader forgets the name once it commits. */
void broker__registry_remove_node(broker_t *b, const char *node, zc_propose_cb cb, void *arg);
/* Leadership lost: forget in-flight registrations. */
void broker__registry_forget_all(broker_t *b);
void broker__registry_destroy(broker_t *b);

#endif
