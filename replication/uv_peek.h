/* uv_peek: the one fact raft 0.15's libuv io keeps to itself -- that a
 * background write failed.
 *
 * libuv's io finishes two kinds of storage work on a worker thread with no
 * request to report to: closing a used open segment (truncate it to what was
 * written, fsync, rename it to its closed name: uv_finalize.c) and a log
 * truncation (uv_truncate.c).  A failure there only sets `errored` in its
 * private struct uv (uv_finalize.c:84,106, uv_truncate.c:107,137), which
 * nothing in raft 0.15 reads: the replica goes on as if the entries were
 * safely in a closed segment.  io_guard.h's bug 5 exits on every storage
 * failure it can see; this makes that one visible.
 *
 * How: struct uv starts with a fixed prefix (raft v0.15.0 src/uv.h: io,
 * loop, dir[UV__DIR_LEN], transport, tracer, id, state, snapshot_compression,
 * errored, direct_io, async_io, segment_size, ...).  The build accepts only
 * raft 0.15.0 (CMakeLists.txt), and zc_uv_peek_check verifies the prefix at
 * run time against what the node gave raft_uv_init (io, loop, directory,
 * transport) and the segment size it set: only then does zc_uv_errored read
 * the flag.  A mismatch (another build of 0.15.0 with a different layout)
 * turns the check off with a warning instead of reading the wrong byte. */
#ifndef ZC_REPLICATION_UV_PEEK_H
#define ZC_REPLICATION_UV_PEEK_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* True when io (after raft_uv_init(io, loop, dir, t) and any
 * raft_uv_set_segment_size) has the layout zc_uv_errored reads;
 * segment_size 0 means raft's default (8 MiB). */
bool zc_uv_peek_check(struct raft_io *io, uv_loop_t *loop, const char *dir,
                      struct raft_uv_transport *t, size_t segment_size);
/* libuv's io hit a storage error (only after zc_uv_peek_check said true). */
bool zc_uv_errored(const struct raft_io *io);

#endif
