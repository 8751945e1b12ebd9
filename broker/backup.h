/* backup: `zcart admin backup NAME` on the leader, and `zcart-broker
 * --restore DIR` offline (docs/operations.md "Backup and restore").
 *
 * A backup is a directory BACKUP_DIR/NAME holding data.mdb, a compacted
 * LMDB copy of the replicated state as of one commit -- carts, free list,
 * sessions, counters, and the applied index they reflect -- and
 * backup.json (index, term, digest, counts, raft members, time) for the
 * operator.  The copy runs on a libuv worker thread (LMDB's MVCC: the loop
 * goes on applying meanwhile), into NAME.tmp, renamed to NAME once synced:
 * a NAME that exists is a whole backup.
 *
 * A restore seeds a NEW cluster: every replica of it is restored from the
 * same backup before its first start (a replica that joins empty would
 * rebuild from the new log only and diverge).  It copies data.mdb into
 * DATA/state, resets the applied index to 0 (the new cluster's entries
 * apply from its first) and forgets the old replica directory; the digest
 * stays the backup's. */
#ifndef ZC_BROKER_BACKUP_H
#define ZC_BROKER_BACKUP_H

#include "broker/internal.h"

/* Start a backup for an admin request (a ready leader); the admin-reply
 * comes when it is written or failed.  One at a time (BUSY otherwise). */
void broker__backup_start(broker_t *b, const uint8_t *client, size_t client_len, uint64_t corr,
                          const char *name);
/* A backup is being written (stop must wait for it: it reads the state). */
bool broker__backup_running(const broker_t *b);
/* --restore: returns the process exit status (0 done, 1 failed, 2 misuse). */
int broker__backup_restore(const char *backup, const char *data_dir, uint64_t map_size);

#endif
