"""zcproc: what /proc says about one of zcart's processes.

Shared by deploy/local/zcart-cluster, the integration harness, the chaos
harness and the benchmarks, so all of them agree on when a daemon is gone:

A process is dead once every one of its threads is a zombie or gone.  A
thread-group leader shows 'Z' while its other threads are still exiting,
and those still hold its sockets and files (a port is free, a data
directory unlocked, only after the last one), so the leader's state alone
is not enough.
"""

import os


def task_state(path):
    """The one-letter state in a /proc/.../stat file; 'X' if it is gone."""
    try:
        with open(path) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return "X"


def proc_state(pid):
    """'running', 'paused' (SIGSTOP) or 'dead' for a pid."""
    leader = task_state("/proc/%d/stat" % pid)
    if leader == "X":
        return "dead"
    if leader == "Z":
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except FileNotFoundError:
            return "dead"
        if all(task_state("/proc/%d/task/%s/stat" % (pid, t)) in "ZX" for t in tasks):
            return "dead"
        return "running"
    return "paused" if leader in "Tt" else "running"
