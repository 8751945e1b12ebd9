"""disk: small data filesystems for the disk-full fault.

Design
------
With the `disk-full` kind in the mix, every replica's and cart node's data
directory is its own tmpfs (`mount -t tmpfs -o size=SIZE zcchaos-disk DIR`),
mounted before the daemon's first start and unmounted at the teardown.
Daemons run under `ip netns exec`, which gives each a copy of the root
mount namespace taken at its exec: the mount is there, and a file the
harness writes into it (from the root namespace) takes the same space.

The fault fills a filesystem: a filler file takes every free block
(posix_fallocate), so the next write that needs a new block -- a new raft
segment, a snapshot, an LMDB page past the end of its file -- fails with
ENOSPC, while writes into blocks already held go on.  Healing deletes the
filler.  What a daemon must do meanwhile (docs/chaos.md): a replica stops
with status 74 (the harness tolerates exactly that exit while its disk is
full and restarts it at the heal), a cart node refuses what it cannot make
durable and keeps running.

`leftovers()`/`cleanup()` find and remove mounts an interrupted run left
(`run.py --cleanup`).
"""

import os
import shutil
import subprocess

SOURCE = "zcchaos-disk"   # the mount's source name: how leftovers are found
FILLER = "zz-chaos-disk-full-filler"


def mount(path, size):
    """A fresh tmpfs of `size` (e.g. "256m") at path (created, must be empty)."""
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        raise RuntimeError("%s is not empty: a data filesystem goes under a new directory" % path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, SOURCE, path],
                   check=True, capture_output=True, timeout=20)


def mounts():
    """Mount points of every zcchaos-disk filesystem."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == SOURCE:
                out.append(fields[1].replace("\\040", " "))
    return out


def unmount(path):
    subprocess.run(["umount", "-l", path], check=False, capture_output=True, timeout=20)


def fill(path):
    """Take every free block of path's filesystem; the bytes taken."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    fd = os.open(os.path.join(path, FILLER), os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        if free:
            os.posix_fallocate(fd, os.fstat(fd).st_size, free)
    finally:
        os.close(fd)
    return free


def free(path):
    """Give the space back (no error if the filler is gone)."""
    try:
        os.unlink(os.path.join(path, FILLER))
    except FileNotFoundError:
        pass


def set_aside(path, dest):
    """Move data directory `path` to `dest` and leave `path` empty -- by a
    rename, or, when `path` is a data tmpfs (a mount point cannot be
    renamed: EBUSY), by moving its contents out (copied across filesystems)."""
    if not os.path.ismount(path):
        os.rename(path, dest)
        return
    os.makedirs(dest)
    for entry in os.listdir(path):
        shutil.move(os.path.join(path, entry), os.path.join(dest, entry))


def leftovers():
    return ["tmpfs %s" % m for m in mounts()]


def cleanup(log=print):
    for m in mounts():
        unmount(m)
        log("unmounted %s" % m)
