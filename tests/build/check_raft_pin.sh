#!/bin/sh
# check_raft_pin: the build refuses any canonical/raft but 0.15.0
# (CMakeLists.txt; replication/io_guard.c fixes 0.15.0's own bugs and reads
# its structures).  Configures this source tree against a copy of raft.pc
# that says 0.16.0 and expects CMake to stop with the pin's message.
# Usage: check_raft_pin.sh SOURCE_DIR
src=$1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
pcdir=$(pkg-config --variable=pcfiledir raft) || exit 1
mkdir "$tmp/pc"
sed 's/^Version:.*/Version: 0.16.0/' "$pcdir/raft.pc" > "$tmp/pc/raft.pc"
if PKG_CONFIG_PATH="$tmp/pc" cmake -S "$src" -B "$tmp/b" > "$tmp/out" 2>&1; then
    echo "FAIL: CMake configured against raft 0.16.0"
    exit 1
fi
if ! grep -q "zcart needs canonical/raft 0.15.0 exactly" "$tmp/out"; then
    echo "FAIL: CMake failed, but not with the raft version message:"
    cat "$tmp/out"
    exit 1
fi
echo "ok: CMake refuses raft 0.16.0"
