/* backup: see backup.h. */
#include "broker/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/json.h"
#include "lib/log.h"
#include "proto/status.h"

#define BACKUP_PATH_MAX 1024

/* One backup in flight. */
typedef struct backup {
    uv_work_t work;                      /* the copy, on a worker thread */
    broker_t *b;                         /* the broker */
    zc_state_t *state;                   /* what is copied (the node's) */
    uint8_t client[BROKER_CLIENT_ID_MAX]; /* who asked */
    uint8_t client_len;                  /* its length */
    uint64_t corr;                       /* its corr */
    char name[65];                       /* NAME */
    char tmp[BACKUP_PATH_MAX];           /* BACKUP_DIR/NAME.tmp, written first */
    char dir[BACKUP_PATH_MAX];           /* BACKUP_DIR/NAME, once whole */
    uint64_t term;                       /* the leader's term at the start */
    char members[512];                   /* raft configuration at the start: "1 voter, ..." */
    /* results, filled by the worker */
    int failed;                          /* 0, or an errno-style failure */
    char why[256];                       /* what failed */
    uint64_t index, digest, bytes;       /* the copy's applied index, digest and size */
    zc_state_counts_t counts;            /* its counts */
} backup_t;

bool broker__backup_running(const broker_t *b) { return b->backup != NULL; }

static int fail(backup_t *k, const char *what)
{
    k->failed = errno ? errno : EIO;
    snprintf(k->why, sizeof k->why, "%s: %s", what, strerror(k->failed));
    return -1;
}

/* data.mdb: the copy, synced. */
static int copy_state(backup_t *k)
{
    char path[BACKUP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", k->tmp);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return fail(k, "cannot create data.mdb");
    errno = 0;
    if (zc_state_copy_fd(k->state, fd) != 0 || fsync(fd) != 0) {
        close(fd);
        return fail(k, "copying the state failed");
    }
    struct stat st;
    k->bytes = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return close(fd) == 0 ? 0 : fail(k, "closing data.mdb");
}

/* Read the copy back: its index, digest and counts are what it holds. */
static int read_copy(backup_t *k)
{
    char err[256];
    zc_state_t *c = zc_state_open_readonly(k->tmp, err, sizeof err);
    if (c == NULL) {
        k->failed = EIO;
        snprintf(k->why, sizeof k->why, "the copy does not open: %.200s", err);
        return -1;
    }
    k->index = zc_state_meta(c, "applied_index");
    k->digest = zc_state_digest(c);
    if (zc_state_counts(c, &k->counts) != 0)
        memset(&k->counts, 0, sizeof k->counts);
    zc_state_close(&c);
    char lock[BACKUP_PATH_MAX + 16];
    snprintf(lock, sizeof lock, "%s/lock.mdb", k->tmp);
    unlink(lock); /* the read-only open's lock file is not part of the backup */
    return 0;
}

static int write_info(backup_t *k)
{
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kstr(&j, "name", k->name);
    zc_json_ku64(&j, "applied_index", k->index);
    zc_json_ku64(&j, "term", k->term);
    char d[17];
    snprintf(d, sizeof d, "%016" PRIx64, k->digest);
    zc_json_kstr(&j, "digest", d);
    zc_json_ku64(&j, "carts", k->counts.total);
    zc_json_ku64(&j, "sessions_live", k->counts.sessions_live);
    zc_json_ku64(&j, "sessions_ended", k->counts.sessions_ended);
    zc_json_kstr(&j, "members", k->members);
    zc_json_ku64(&j, "bytes", k->bytes);
    zc_json_ku64(&j, "time_ms", zc_wall_ms());
    zc_json_end(&j);
    char path[BACKUP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/backup.json", k->tmp);
    FILE *f = fopen(path, "wx");
    int rc = 0;
    if (f == NULL || fprintf(f, "%s\n", zc_json_str(&j)) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0)
        rc = fail(k, "writing backup.json");
    if (f && fclose(f) != 0 && rc == 0)
        rc = fail(k, "closing backup.json");
    zc_json_clear(&j);
    return rc;
}

static void on_work(uv_work_t *w)
{
    backup_t *k = w->data;
    errno = 0;
    if (mkdir(k->tmp, 0700) != 0) {
        fail(k, "cannot create the backup directory");
        return;
    }
    if (copy_state(k) != 0 || read_copy(k) != 0 || write_info(k) != 0)
        return;
    if (rename(k->tmp, k->dir) != 0)
        fail(k, "cannot rename NAME.tmp to NAME");
}

static void on_done(uv_work_t *w, int status)
{
    backup_t *k = w->data;
    broker_t *b = k->b;
    char detail[ZC_DETAIL_MAX + 1];
    int code = ZC_OK;
    if (status != 0 || k->failed) {
        code = ZC_INTERNAL;
        snprintf(detail, sizeof detail, "backup %s failed: %.150s", k->name,
                 status ? "cancelled" : k->why);
        zc_error("%s", detail);
    } else {
        snprintf(detail, sizeof detail,
                 "backup %s: index %" PRIu64 ", digest %016" PRIx64 ", %u carts, %u live "
                 "sessions, %" PRIu64 " bytes in %.100s",
                 k->name, k->index, k->digest, k->counts.total, k->counts.sessions_live, k->bytes,
                 k->dir);
        zc_info("%s", detail);
    }
    if (!b->stopping)
        broker__frontend_admin_reply(b, k->client, k->client_len, k->corr, code, detail);
    b->backup = NULL;
    free(k);
    if (b->stopping)
        b->finish_stop(b); /* stop waited for the copy to let go of the state */
}

/* "1 voter, 2 voter, 3 standby" */
static void describe_members(broker_t *b, char *out, size_t cap)
{
    uint64_t ids[16];
    const char *roles[16];
    unsigned n = broker__configuration(b, ids, roles, 16);
    size_t used = 0;
    out[0] = 0;
    for (unsigned i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%" PRIu64 " %s", i ? ", " : "", ids[i],
                                 roles[i]);
}

void broker__backup_start(broker_t *b, const uint8_t *client, size_t client_len, uint64_t corr,
                          const char *name)
{
    if (name == NULL || !zc_backup_name_valid(name)) {
        broker__frontend_admin_reply(
            b, client, client_len, corr, ZC_BAD_REQUEST,
            "backup wants name: 1..64 of [A-Za-z0-9_.-], not starting with '.'");
        return;
    }
    if (b->backup) {
        broker__frontend_admin_reply(b, client, client_len, corr, ZC_BUSY,
                                     "a backup is being written");
        return;
    }
    backup_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        broker__frontend_admin_reply(b, client, client_len, corr, ZC_INTERNAL, "out of memory");
        return;
    }
    k->b = b;
    k->state = broker__state(b);
    memcpy(k->client, client, client_len);
    k->client_len = (uint8_t)client_len;
    k->corr = corr;
    snprintf(k->name, sizeof k->name, "%s", name);
    snprintf(k->dir, sizeof k->dir, "%s/%s", b->cfg.backup_dir, name);
    snprintf(k->tmp, sizeof k->tmp, "%s/%s.tmp", b->cfg.backup_dir, name);
    zc_node_info_t info;
    broker__info(b, &info);
    k->term = info.term;
    describe_members(b, k->members, sizeof k->members);
    struct stat st;
    mkdir(b->cfg.backup_dir, 0700); /* the default lives in the data directory */
    if (stat(k->dir, &st) == 0 || stat(k->tmp, &st) == 0) {
        char why[ZC_DETAIL_MAX + 1];
        snprintf(why, sizeof why, "backup %s exists already in %.120s (or its .tmp: remove it)", name,
                 b->cfg.backup_dir);
        broker__frontend_admin_reply(b, client, client_len, corr, ZC_BAD_REQUEST, why);
        free(k);
        return;
    }
    k->work.data = k;
    b->backup = k;
    zc_info("backup %s: copying the state (index %" PRIu64 ") into %s", name, info.applied_index,
            k->dir);
    uv_queue_work(b->loop, &k->work, on_work, on_done);
}

/* Copy src to dst (a new file), synced. */
static int copy_file(const char *src, const char *dst, char *why, size_t cap)
{
    int in = open(src, O_RDONLY), out = -1;
    char buf[1 << 16];
    ssize_t n = 0;
    if (in < 0) {
        snprintf(why, cap, "%s: %s", src, strerror(errno));
        return -1;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (out < 0) {
        snprintf(why, cap, "%s: %s", dst, strerror(errno));
        close(in);
        return -1;
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    int rc = (n == 0 && fsync(out) == 0) ? 0 : -1;
    if (rc)
        snprintf(why, cap, "copying %s to %s: %s", src, dst, strerror(errno ? errno : EIO));
    close(in);
    close(out);
    return rc;
}

/* mkdir -p: every missing directory of path, 0700. */
static int make_dirs(const char *path)
{
    char p[BACKUP_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return -1;
            *c = '/';
        }
    return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int broker__backup_restore(const char *backup, const char *data_dir, uint64_t map_size)
{
    char src[BACKUP_PATH_MAX + 16], dir[BACKUP_PATH_MAX + 16], dst[BACKUP_PATH_MAX + 32],
        raft[BACKUP_PATH_MAX + 16], why[512];
    struct stat st;
    snprintf(src, sizeof src, "%s/data.mdb", backup);
    snprintf(dir, sizeof dir, "%s/state", data_dir);
    snprintf(raft, sizeof raft, "%s/raft", data_dir);
    snprintf(dst, sizeof dst, "%s/data.mdb", dir);
    if (stat(src, &st) != 0) {
        fprintf(stderr, "zcart-broker: --restore %s: no data.mdb there (not a backup)\n", backup);
        return 2;
    }
    if (stat(dir, &st) == 0 || stat(raft, &st) == 0) {
        fprintf(stderr, "zcart-broker: --restore: %s already holds a replica (state or raft): "
                        "restore into an empty data directory\n", data_dir);
        return 2;
    }
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "zcart-broker: --restore: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (copy_file(src, dst, why, sizeof why) != 0) {
        fprintf(stderr, "zcart-broker: --restore: %s\n", why);
        return 1;
    }
    zc_state_t *s = zc_state_open(dir, map_size, why, sizeof why);
    if (s == NULL) {
        fprintf(stderr, "zcart-broker: --restore: the copy does not open: %s\n", why);
        return 1;
    }
    uint64_t index = zc_state_meta(s, "applied_index"), digest = zc_state_digest(s);
    int rc = zc_state_forget_history(s);
    uint64_t after = zc_state_digest(s);
    zc_state_close(&s);
    if (rc != 0 || after != digest) {
        fprintf(stderr, "zcart-broker: --restore: could not reset the copy's history\n");
        return 1;
    }
    printf("restored %s into %s: digest %016" PRIx64 ", applied index %" PRIu64
           " reset to 0; start every replica of the new cluster from this same backup\n",
           backup, data_dir, digest, index);
    return 0;
}
