/* lmdbx: LMDB environments opened one way (see lmdbx.h). */
#include "lib/lmdbx.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The databases, in one transaction; 0 or an LMDB error (the first
 * mandatory database missing or failing). */
static int open_dbs(MDB_env *env, unsigned txn_flags, unsigned dbi_flags, const zc_lmdb_db_t *dbs,
                    size_t n)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(env, NULL, txn_flags, &t);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = mdb_dbi_open(t, dbs[i].name, dbi_flags, dbs[i].dbi);
        if (dbs[i].optional && dbs[i].present)
            *dbs[i].present = rc == 0;
        if (rc != 0 && !(dbs[i].optional && rc == MDB_NOTFOUND)) {
            mdb_txn_abort(t);
            return rc;
        }
    }
    /* Handles opened in a read-only transaction stay valid once it commits. */
    return mdb_txn_commit(t);
}

int zc_lmdb_open(MDB_env **env, const char *dir, unsigned maxdbs, size_t map_size, unsigned flags,
                 const zc_lmdb_db_t *dbs, size_t n, char *err, size_t errlen)
{
    int rc;
    *env = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", dir, strerror(errno));
        return -1;
    }
    if ((rc = mdb_env_create(env)) == 0) {
        mdb_env_set_maxdbs(*env, maxdbs);
        mdb_env_set_mapsize(*env, map_size);
        if ((rc = mdb_env_open(*env, dir, flags, 0644)) == 0 &&
            (rc = open_dbs(*env, 0, MDB_CREATE, dbs, n)) == 0)
            return 0;
        mdb_env_close(*env);
        *env = NULL;
    }
    snprintf(err, errlen, "lmdb %s: %s", dir, mdb_strerror(rc));
    return -1;
}

int zc_lmdb_open_readonly(MDB_env **env, const char *dir, const char *what, unsigned maxdbs,
                          const zc_lmdb_db_t *dbs, size_t n, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    int rc;
    *env = NULL;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: no %s here (%s: %s)", dir, what, path, strerror(errno));
        return -1;
    }
    if ((rc = mdb_env_create(env)) != 0) {
        snprintf(err, errlen, "lmdb %s: %s", dir, mdb_strerror(rc));
        return -1;
    }
    mdb_env_set_maxdbs(*env, maxdbs);
    if ((rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOTLS, 0644)) == 0 &&
        (rc = open_dbs(*env, MDB_RDONLY, 0, dbs, n)) == 0)
        return 0;
    /* Without MDB_CREATE: a database that is missing is not a WHAT. */
    snprintf(err, errlen, "%s: not a %s (lmdb: %s)", dir, what, mdb_strerror(rc));
    mdb_env_close(*env);
    *env = NULL;
    return -1;
}

int zc_lmdb_usage(MDB_env *env, uint64_t *used_bytes, uint64_t *map_bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0 ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &t) != 0)
        return -1;
    uint64_t free_pages = 0;
    if (mdb_cursor_open(t, 0, &cur) == 0) {
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT)
            if (v.mv_size >= sizeof(size_t))
                free_pages += *(const size_t *)v.mv_data; /* an ID list: count first */
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(t);
    uint64_t pages = (uint64_t)info.me_last_pgno + 1;
    *used_bytes = (pages > free_pages ? pages - free_pages : 0) * st.ms_psize;
    *map_bytes = info.me_mapsize;
    return 0;
}
