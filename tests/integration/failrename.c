/* failrename: an LD_PRELOAD shim for test_background_failure.
 *
 * rename() of a file whose name starts with "open-" (a raft open segment
 * being finalized into a closed one, raft v0.15.0 uv_finalize.c, on a libuv
 * worker thread) fails with EIO while a file named "zc-fail-rename" exists
 * in the same directory; every other rename, and every rename while that
 * file is absent, is the real one.  The test creates the file in one
 * replica's raft directory to make that replica's next finalization fail. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int rename(const char *from, const char *to)
{
    int (*real)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    const char *slash = strrchr(from, '/');
    if (slash != NULL && strncmp(slash + 1, "open-", 5) == 0) {
        char flag[4096];
        snprintf(flag, sizeof flag, "%.*s/zc-fail-rename", (int)(slash - from), from);
        if (access(flag, F_OK) == 0) {
            errno = EIO;
            return -1;
        }
    }
    return real(from, to);
}
