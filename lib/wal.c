/* wal: see wal.h. */
#include "lib/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/crc32c.h"

#define WAL_MAGIC 0x5a43574cu /* "ZCWL" */

struct zc_wal {
    int fd;            /* the file, -1 for a read-only open of a missing one */
    size_t size;       /* its size (the space records may use) */
    size_t off;        /* where the next record goes: the chain's end */
    uint64_t next_seq; /* seq of the next record */
    bool readonly;     /* opened read-only: zc_wal_append refuses */
};

static void be32(uint8_t *b, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}
static void be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}
static uint32_t rd32(const uint8_t *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static uint64_t rd64(const uint8_t *b) { return (uint64_t)rd32(b) << 32 | rd32(b + 4); }

static uint32_t record_crc(const uint8_t *hdr, const uint8_t *p, size_t len)
{
    uint32_t c = zc_crc32c(0, hdr + 4, 20); /* length, seq, tag */
    return zc_crc32c(c, p, len);
}

static int pread_all(int fd, void *buf, size_t n, off_t off)
{
    uint8_t *b = buf;
    while (n > 0) {
        ssize_t r = pread(fd, b, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const uint8_t *b = buf;
    while (n > 0) {
        ssize_t r = pwrite(fd, b, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        b += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* The record at off, if it is the chain's next (seq == want, or any seq
 * when want is 0): its payload (malloc'd) and length.  1 found, 0 not. */
static int read_record(zc_wal_t *w, size_t off, uint64_t want, uint64_t *seq, uint64_t *tag,
                       uint8_t **payload, size_t *len)
{
    uint8_t h[ZC_WAL_HEADER];
    if (off + ZC_WAL_HEADER > w->size || pread_all(w->fd, h, sizeof h, (off_t)off) != 0)
        return 0;
    uint32_t n = rd32(h + 4);
    if (rd32(h) != WAL_MAGIC || n > w->size - off - ZC_WAL_HEADER)
        return 0;
    *seq = rd64(h + 8);
    *tag = rd64(h + 16);
    if (*seq == 0 || (want != 0 && *seq != want))
        return 0;
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL || pread_all(w->fd, p, n, (off_t)(off + ZC_WAL_HEADER)) != 0 ||
        record_crc(h, p, n) != rd32(h + 24)) {
        free(p);
        return 0;
    }
    *payload = p;
    *len = n;
    return 1;
}

int zc_wal_each(zc_wal_t *w, int (*fn)(uint64_t tag, const uint8_t *p, size_t len, void *arg),
                void *arg)
{
    size_t off = 0;
    uint64_t want = 0, seq, tag;
    uint8_t *p;
    size_t n;
    if (w->fd < 0)
        return 0;
    while (read_record(w, off, want, &seq, &tag, &p, &n)) {
        int rc = fn ? fn(tag, p, n, arg) : 0;
        free(p);
        if (rc != 0)
            return rc;
        off += ZC_WAL_HEADER + n;
        want = seq + 1;
    }
    w->off = off;
    if (want > w->next_seq)
        w->next_seq = want;
    return 0;
}

/* A new file: zeros, synced, and its directory entry synced. */
static int create_file(const char *path, size_t size, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
        return -1;
    }
    static const uint8_t zeros[65536];
    for (size_t off = 0; off < size;) {
        size_t n = size - off < sizeof zeros ? size - off : sizeof zeros;
        if (pwrite_all(fd, zeros, n, (off_t)off) != 0) {
            snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += n;
    }
    if (fsync(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "sync/rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(err, errlen, "sync the directory of %s: %s", path, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    return -1;
}

zc_wal_t *zc_wal_open(const char *path, size_t size, bool readonly, char *err, size_t errlen)
{
    zc_wal_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->fd = -1;
    w->readonly = readonly;
    w->next_seq = 1;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (readonly)
            return w; /* an empty log */
        if (create_file(path, size, err, errlen) != 0)
            goto fail;
    }
    w->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (w->fd < 0 || fstat(w->fd, &st) != 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    w->size = (size_t)st.st_size; /* an existing file keeps its own size */
    if (w->size < ZC_WAL_HEADER) {
        snprintf(err, errlen, "%s: %zu bytes, not a log", path, w->size);
        goto fail;
    }
    if (zc_wal_each(w, NULL, NULL) != 0) {
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        goto fail;
    }
    return w;
fail:
    zc_wal_close(&w);
    return NULL;
}

void zc_wal_close(zc_wal_t **p)
{
    zc_wal_t *w = *p;
    if (w == NULL)
        return;
    *p = NULL;
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}

int zc_wal_append(zc_wal_t *w, uint64_t tag, const void *p, size_t len)
{
    if (w->readonly || w->fd < 0) {
        errno = EROFS;
        return -1;
    }
    if (len > w->size || w->off + ZC_WAL_HEADER + len > w->size)
        return 1;
    uint8_t *rec = malloc(ZC_WAL_HEADER + len);
    if (rec == NULL) {
        errno = ENOMEM;
        return -1;
    }
    uint64_t seq = w->next_seq;
    be32(rec, WAL_MAGIC);
    be32(rec + 4, (uint32_t)len);
    be64(rec + 8, seq);
    be64(rec + 16, tag);
    be32(rec + 28, 0);
    memcpy(rec + ZC_WAL_HEADER, p, len);
    be32(rec + 24, record_crc(rec, rec + ZC_WAL_HEADER, len));
    int rc = pwrite_all(w->fd, rec, ZC_WAL_HEADER + len, (off_t)w->off);
    free(rec);
    if (rc != 0 || fdatasync(w->fd) != 0) {
        /* Best effort: unmake the record, so that a crash before the next
         * append does not find it.  The next record goes to the same
         * place, with the same seq. */
        int e = errno;
        static const uint8_t zero[4];
        if (pwrite_all(w->fd, zero, sizeof zero, (off_t)w->off) == 0)
            (void)fdatasync(w->fd);
        errno = e;
        return -1;
    }
    w->off += ZC_WAL_HEADER + len;
    w->next_seq++;
    return 0;
}

void zc_wal_rewind(zc_wal_t *w) { w->off = 0; }
size_t zc_wal_used(const zc_wal_t *w) { return w->off; }
size_t zc_wal_size(const zc_wal_t *w) { return w->size; }
