/* uv_peek: see uv_peek.h for why and how. */
#include "replication/uv_peek.h"

#include <string.h>

/* raft v0.15.0 src/uv_os.h: UV__PATH_SZ - strlen("/") - UV__FILENAME_LEN - 1. */
#define UV_DIR_LEN (1024 - 1 - 128 - 1)
/* raft v0.15.0 src/uv.h: UV__MAX_SEGMENT_SIZE, the default segment size. */
#define UV_DEFAULT_SEGMENT_SIZE (8u * 1024 * 1024)

/* The first fields of raft v0.15.0's struct uv, in order. */
struct uv_prefix {
    struct raft_io *io;                  /* the io it implements */
    uv_loop_t *loop;                     /* its loop */
    char dir[UV_DIR_LEN];                /* data directory */
    struct raft_uv_transport *transport; /* network transport */
    void *tracer;                        /* struct raft_tracer * */
    raft_id id;                          /* server id */
    int state;                           /* UV__PRISTINE, ... */
    bool snapshot_compression;           /* compress snapshots */
    bool errored;                        /* a disk I/O error was hit */
    bool direct_io;                      /* O_DIRECT works here */
    bool async_io;                       /* kernel AIO works here */
    size_t segment_size;                 /* size of new open segments */
};

bool zc_uv_peek_check(struct raft_io *io, uv_loop_t *loop, const char *dir,
                      struct raft_uv_transport *t, size_t segment_size)
{
    const struct uv_prefix *u = io->impl;
    return u != NULL && u->io == io && u->loop == loop && u->transport == t &&
           strncmp(u->dir, dir, sizeof u->dir) == 0 &&
           u->segment_size == (segment_size ? segment_size : UV_DEFAULT_SEGMENT_SIZE);
}

bool zc_uv_errored(const struct raft_io *io)
{
    const struct uv_prefix *u = io->impl;
    return u->errored;
}
