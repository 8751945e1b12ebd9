/* wal: a write-ahead log of opaque records in one preallocated file, each
 * record durable (written and fdatasync'd) when zc_wal_append returns.
 *
 * The file is written full of zeros when it is created, so an append only
 * overwrites blocks the file already has: its fdatasync flushes data, never
 * the file's size or block map.  Records follow each other from offset 0:
 *
 *   magic "ZCWL" | payload length u32 | seq u64 | tag u64 | crc32c u32 |
 *   zero u32 | payload
 *
 * (big-endian; the CRC covers length, seq, tag and payload).  The user
 * rewinds the log (zc_wal_rewind) once everything in it is durable
 * elsewhere -- a checkpoint -- and later records overwrite the old ones from
 * offset 0.  seq grows by one per record for the life of the file, across
 * rewinds, so reading back is unambiguous: the log is the chain of whole
 * records from offset 0 whose seqs follow each other; it ends at the first
 * record that is torn (CRC), zeroed, or older (its seq is not the next one:
 * a record from before the last rewind).  The tag is the user's own label
 * (cart/store.c: the LMDB transaction the record belongs to), so that after
 * a crash it can tell which records its checkpoint already holds. */
#ifndef ZC_LIB_WAL_H
#define ZC_LIB_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zc_wal zc_wal_t;

#define ZC_WAL_HEADER 32 /* bytes before each record's payload */

/* Open the log at path, creating it (size bytes of zeros, synced, its
 * directory synced) if it does not exist; read-only opens never create
 * (a missing file is then an empty log, no error).  Reads the chain: the
 * next append goes after it.  NULL with err on failure. */
zc_wal_t *zc_wal_open(const char *path, size_t size, bool readonly, char *err, size_t errlen);
void zc_wal_close(zc_wal_t **w);

/* Visit the chain's records in order: fn(tag, payload, len, arg); a
 * non-zero return stops the walk and is returned.  0 when all were
 * visited, -1 on a read error. */
int zc_wal_each(zc_wal_t *w, int (*fn)(uint64_t tag, const uint8_t *p, size_t len, void *arg),
                void *arg);

/* Append one record and make it durable.  0; 1 if it does not fit in the
 * space left (nothing written); -1 on a write or sync error (errno set; the
 * record may or may not be in the file: the next append overwrites it, at
 * the same offset with the same seq, so the chain never skips a seq). */
int zc_wal_append(zc_wal_t *w, uint64_t tag, const void *p, size_t len);

/* The next append goes to offset 0: everything in the log is superseded. */
void zc_wal_rewind(zc_wal_t *w);

/* Bytes of the chain since the last rewind, and the file's size. */
size_t zc_wal_used(const zc_wal_t *w);
size_t zc_wal_size(const zc_wal_t *w);

#endif
