#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to build, run and test zcart.
#
# Idempotent: packages already installed are left alone, and when nothing is
# missing the script does not touch the network at all.  When something is
# missing it runs `apt-get update` first, then installs only the missing ones.
# Must run as root (or with sudo available).
set -euo pipefail

# Build and runtime libraries.
PKGS_BUILD=(
  build-essential cmake pkg-config
  libzmq3-dev libczmq-dev libraft-dev libuv1-dev liblmdb-dev
  libmicrohttpd-dev                 # /metrics, /healthz, /readyz (lib/httpd)
  libsystemd-dev                    # sd_notify READY/STATUS/WATCHDOG (lib/sdnotify)
)
# What the test suite, the local cluster tool and the benchmarks use.
PKGS_TEST=(
  python3 python3-zmq lmdb-utils
  clang libclang-rt-14-dev          # sanitizer build (ASan + UBSan)
  iproute2 nftables procps          # chaos harness: namespaces, partitions
  gnuplot-nox                       # chaos report plots
  prometheus                        # promtool checks the /metrics pages
  docker-compose                    # `config -q` checks deploy/docker (no engine needed)
  python3-jsonschema python3-yaml   # gateway answers validated against docs/openapi.yaml
  curl                              # docs/gateway.md's curl flow, run as written
  chromium                          # the dashboard's browser test (headless)
)
# npm (Debian's, with its nodejs) only when no npm is on PATH: a machine
# with another Node.js keeps it.
if ! command -v npm >/dev/null 2>&1; then
  PKGS_TEST+=(npm)
fi

missing=()
for p in "${PKGS_BUILD[@]}" "${PKGS_TEST[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node tools from the npm registry, pinned, into .tools/node (not in git):
# Redocly's CLI lints docs/openapi.yaml, playwright-core drives Debian's
# chromium for the dashboard test.
NODE_TOOLS_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/node"
NODE_TOOLS=("@redocly/cli@1.34.20" "playwright-core@1.64.1")
node_tools() {
  local want="${NODE_TOOLS[*]}"
  if [ -f "$NODE_TOOLS_DIR/.installed" ] && [ "$(cat "$NODE_TOOLS_DIR/.installed")" = "$want" ]; then
    return 0
  fi
  echo "install-deps: npm install ${want} into $NODE_TOOLS_DIR"
  mkdir -p "$NODE_TOOLS_DIR"
  (cd "$NODE_TOOLS_DIR" && npm install --no-audit --no-fund --loglevel=error "${NODE_TOOLS[@]}" >/dev/null)
  echo "$want" > "$NODE_TOOLS_DIR/.installed"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS_BUILD[@]}+${#PKGS_TEST[@]} packages present"
  node_tools
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
node_tools
