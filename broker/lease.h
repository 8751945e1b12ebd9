/* lease: session leases on the leader (see lease.c). */
#ifndef ZC_BROKER_LEASE_H
#define ZC_BROKER_LEASE_H

#include "broker/internal.h"

/* How often the tick runs broker__lease_scan. */
#define LEASE_SCAN_MS 250

/* A request of a live session arrived (or its ASSIGN committed): its lease
 * starts again. */
void broker__lease_touch(broker_t *b, const uint8_t session[ZC_SESSION_LEN]);
/* The session ended (closed): forget its lease. */
void broker__lease_forget(broker_t *b, const uint8_t session[ZC_SESSION_LEN]);
/* Propose the expiry (a RELEASE, why "lease expired") of every live session
 * whose lease ran out (leader only). */
/* Expire the leases that are due (the deadline queue: O(due), not
 * O(sessions)). */
void broker__lease_scan(broker_t *b, uint64_t now_us);
/* This replica became a ready leader: a full lease for every live session
 * (one walk of the registry's ASSIGNED carts). */
void broker__lease_start(broker_t *b);
/* Leadership lost: forget every lease (a new leader restarts them all). */
void broker__lease_forget_all(broker_t *b);
void broker__lease_destroy(broker_t *b);

#endif
