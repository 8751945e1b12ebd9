/* inventory: see inventory.h.  Catalog grammar:
 *
 *   line    = *WSP ( comment / entry / "" ) *WSP
 *   comment = "#" *CHAR
 *   entry   = product "," qty        ; product as in docs/protocol.md
 *   qty     = 1*10DIGIT              ; 0 .. 1,000,000,000
 *
 * The whole file is parsed and validated before anything is written, so a
 * bad catalog seeds nothing. */
#include "stock/inventory.h"

#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/msg.h"

struct inventory {
    MDB_env *env; /* LMDB environment (owned) */
    MDB_dbi dbi;  /* product -> u32 units, big-endian */
};

inventory_t *inventory_open(const char *dir, char *err, size_t errlen)
{
    inventory_t *inv = calloc(1, sizeof *inv);
    MDB_txn *t;
    int rc;
    if (inv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", dir, strerror(errno));
        free(inv);
        return NULL;
    }
    if ((rc = mdb_env_create(&inv->env)) != 0)
        goto err;
    mdb_env_set_mapsize(inv->env, (size_t)64 << 20);
    if ((rc = mdb_env_open(inv->env, dir, MDB_NOTLS, 0644)) != 0)
        goto err_after_env;
    if ((rc = mdb_txn_begin(inv->env, NULL, 0, &t)) != 0)
        goto err_after_env;
    if ((rc = mdb_dbi_open(t, NULL, 0, &inv->dbi)) != 0) {
        mdb_txn_abort(t);
        goto err_after_env;
    }
    if ((rc = mdb_txn_commit(t)) != 0)
        goto err_after_env;
    return inv;
err_after_env:
    mdb_env_close(inv->env);
err:
    snprintf(err, errlen, "lmdb %s: %s", dir, mdb_strerror(rc));
    free(inv);
    return NULL;
}

void inventory_close(inventory_t **p)
{
    if (*p == NULL)
        return;
    mdb_env_close((*p)->env);
    free(*p);
    *p = NULL;
}

size_t inventory_count(inventory_t *inv)
{
    MDB_txn *t;
    MDB_stat st;
    if (mdb_txn_begin(inv->env, NULL, MDB_RDONLY, &t) != 0)
        return 0;
    size_t n = mdb_stat(t, inv->dbi, &st) == 0 ? st.ms_entries : 0;
    mdb_txn_abort(t);
    return n;
}

/* One parsed catalog entry. */
typedef struct {
    char product[ZC_PRODUCT_MAX + 1]; /* product id */
    uint32_t qty;                     /* units */
} entry_t;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* Parse the whole file; -1 with err on the first bad line. */
static int parse(const char *path, entry_t **out, size_t *n_out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    entry_t *v = NULL;
    size_t n = 0, cap = 0;
    char line[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *comma = strchr(s, ',');
        if (comma == NULL) {
            snprintf(err, errlen, "%s:%d: expected 'product,qty'", path, lineno);
            rc = -1;
            break;
        }
        *comma = 0;
        char *prod = trim(s), *qs = trim(comma + 1), *end;
        if (!zc_product_valid(prod)) {
            snprintf(err, errlen,
                     "%s:%d: bad product id '%.64s' (1..64 printable ASCII, no space or comma)",
                     path, lineno, prod);
            rc = -1;
            break;
        }
        errno = 0;
        unsigned long long q = strtoull(qs, &end, 10);
        if (*qs == 0 || *end != 0 || !isdigit((unsigned char)*qs) || errno || q > 1000000000ull) {
            snprintf(err, errlen, "%s:%d: qty must be 0..1000000000 (got '%.32s')", path, lineno,
                     qs);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].product, prod) == 0) {
                snprintf(err, errlen, "%s:%d: product '%s' listed twice", path, lineno, prod);
                rc = -1;
                break;
            }
        if (rc != 0)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            entry_t *nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            v = nv;
        }
        snprintf(v[n].product, sizeof v[n].product, "%s", prod);
        v[n].qty = (uint32_t)q;
        n++;
    }
    fclose(f);
    if (rc != 0) {
        free(v);
        return -1;
    }
    *out = v;
    *n_out = n;
    return 0;
}

int inventory_seed(inventory_t *inv, const char *catalog, int *seeded, char *err, size_t errlen)
{
    *seeded = 0;
    if (inventory_count(inv) > 0)
        return 0;
    entry_t *v;
    size_t n;
    if (parse(catalog, &v, &n, err, errlen) != 0)
        return -1;
    MDB_txn *t;
    int rc = mdb_txn_begin(inv->env, NULL, 0, &t);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t b[4] = {(uint8_t)(v[i].qty >> 24), (uint8_t)(v[i].qty >> 16),
                        (uint8_t)(v[i].qty >> 8), (uint8_t)v[i].qty};
        MDB_val k = {strlen(v[i].product), v[i].product}, val = {4, b};
        rc = mdb_put(t, inv->dbi, &k, &val, 0);
    }
    if (rc == 0)
        rc = mdb_txn_commit(t);
    else
        mdb_txn_abort(t);
    free(v);
    if (rc != 0) {
        snprintf(err, errlen, "storing the catalog: %s", mdb_strerror(rc));
        return -1;
    }
    *seeded = (int)n;
    return 0;
}

int inventory_get(inventory_t *inv, const char *product, uint32_t *units)
{
    MDB_txn *t;
    if (mdb_txn_begin(inv->env, NULL, MDB_RDONLY, &t) != 0)
        return -1;
    MDB_val k = {strlen(product), (void *)product}, v;
    int rc = mdb_get(t, inv->dbi, &k, &v);
    if (rc == 0 && v.mv_size == 4) {
        const uint8_t *b = v.mv_data;
        *units = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    mdb_txn_abort(t);
    return rc == MDB_NOTFOUND ? 1 : rc == 0 && v.mv_size == 4 ? 0 : -1;
}
