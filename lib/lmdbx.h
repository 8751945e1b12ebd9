/* lmdbx: opening an LMDB environment and its named databases, the way the
 * replicated state (replication/state.c) and a cart node's store
 * (cart/store.c) both do it: created read-write, or read-only for
 * inspection (--dump-state) with the directory checked first, since
 * mdb_env_open names neither the directory nor the missing file. */
#ifndef ZC_LIB_LMDBX_H
#define ZC_LIB_LMDBX_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One named database: where its handle goes, and whether a read-only open
 * may find it missing (then *dbi is left alone and *present false). */
typedef struct {
    const char *name; /* database name */
    MDB_dbi *dbi;     /* out: its handle */
    bool optional;    /* read-only: missing is not an error */
    bool *present;    /* out, optional ones: found (may be NULL) */
} zc_lmdb_db_t;
#define ZC_LMDB_DB(name, dbi)                                                                      \
    {                                                                                              \
        (name), (dbi), false, NULL                                                                 \
    }
#define ZC_LMDB_DB_OPTIONAL(name, dbi, present)                                                    \
    {                                                                                              \
        (name), (dbi), true, (present)                                                             \
    }

/* Open (creating dir and every database) the environment at dir with
 * maxdbs named databases and a map of map_size bytes, env flags as given.
 * 0, or -1 with err ("lmdb DIR: why", "create DIR: why"); *env is then
 * closed and NULL. */
int zc_lmdb_open(MDB_env **env, const char *dir, unsigned maxdbs, size_t map_size, unsigned flags,
                 const zc_lmdb_db_t *dbs, size_t n, char *err, size_t errlen);

/* Open an existing environment read-only: dir must be a directory holding
 * data.mdb (else err "DIR: no WHAT here (...)"), and every database not
 * optional must exist (else "DIR: not a WHAT (lmdb: why)").  Nothing is
 * created or written.  0 or -1 as zc_lmdb_open. */
int zc_lmdb_open_readonly(MDB_env **env, const char *dir, const char *what, unsigned maxdbs,
                          const zc_lmdb_db_t *dbs, size_t n, char *err, size_t errlen);

/* The bytes of the map in use (its pages less those on LMDB's free list,
 * which later writes reuse) and the map's size.  Opens its own read
 * transaction (the free list, database 0, cannot be read inside a write
 * transaction; MDB_NOTLS allows one next to a write).  0 or -1. */
int zc_lmdb_usage(MDB_env *env, uint64_t *used_bytes, uint64_t *map_bytes);

#endif
