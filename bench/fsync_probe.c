/* fsync_probe: the durability floor under zcart's routed path, for
 * bench/compare.py (`make bench-compare`): how long one fdatasync of a
 * 4 KiB block takes on the filesystem of a directory (the cluster's data
 * directory, where the cart nodes' LMDB commits land).
 *
 * The block is preallocated (posix_fallocate) and rewritten in place, so
 * every sync flushes data only, no metadata growth: the cheapest durable
 * write that filesystem offers.  Prints one JSON object: writes, p50_us,
 * p99_us. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: fsync_probe DIR [WRITES]\n");
        return 2;
    }
    long n = argc == 3 ? atol(argv[2]) : 500;
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "fsync_probe: WRITES must be 1..1000000\n");
        return 2;
    }
    char path[4200], block[4096];
    snprintf(path, sizeof path, "%s/fsync-probe.%d.tmp", argv[1], (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fsync_probe: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = posix_fallocate(fd, 0, sizeof block);
    if (rc != 0 || fdatasync(fd) != 0) {
        fprintf(stderr, "fsync_probe: preallocate %s: %s\n", path, strerror(rc ? rc : errno));
        close(fd);
        unlink(path);
        return 1;
    }
    uint64_t *lat = malloc((size_t)n * sizeof *lat);
    for (long i = 0; i < n; i++) {
        memset(block, (int)(i & 0xff), sizeof block);
        uint64_t t0 = zc_mono_us();
        if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            fprintf(stderr, "fsync_probe: write %s: %s\n", path, strerror(errno));
            n = i;
            break;
        }
        lat[i] = zc_mono_us() - t0;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("{\"writes\": %ld, \"p50_us\": %" PRIu64 ", \"p99_us\": %" PRIu64 ", \"dir\": \"%s\"}\n",
           n, n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0, argv[1]);
    free(lat);
    return n ? 0 : 1;
}
