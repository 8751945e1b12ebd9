/* registry: cart nodes as the leader sees them.
 *
 * A HELLO lists a node's slots.  Slots the replicated cart registry lacks are
 * registered by one committed REGISTER per node at a time (an empty slot
 * joins the free list, one that still holds an owner or items is registered
 * draining so it is reset first).  The per-node record kept here (last HELLO
 * time, a REGISTER in flight) is volatile and rebuilt from HELLOs. */
#ifndef ZC_BROKER_REGISTRY_H
#define ZC_BROKER_REGISTRY_H

#include "broker/broker.h"

void registry_hello(broker_t *b, const zc_msg_t *hello);
/* Leadership lost: forget in-flight registrations. */
void registry_forget_all(broker_t *b);
void registry_destroy(broker_t *b);

#endif
