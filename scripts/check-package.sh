#!/usr/bin/env bash
# Build zcart's .deb from BUILD_DIR (CPack, deploy/package.cmake), install it
# with dpkg, check what it installed -- binaries that run, the `zcart` user,
# systemd units that `systemd-analyze verify` accepts with nothing on stderr
# (it exits 0 on some errors) -- then remove and purge it and check that
# nothing is left.  Needs root; leaves the machine as it found it.
#
#   bash scripts/check-package.sh build
set -euo pipefail
build=${1:-build}
fail() { echo "check-package: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' zcart 2>/dev/null | grep -q 'install ok installed'; then
  fail "a zcart package is already installed; remove it first (dpkg -r zcart)"
fi
rm -f "$build"/zcart_*.deb
(cd "$build" && cpack -G DEB >/dev/null) || fail "cpack failed"
deb=$(ls "$build"/zcart_*.deb)
echo "check-package: $deb"
cleanup() { dpkg --purge zcart >/dev/null 2>&1 || true; }
trap cleanup EXIT
dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
for b in zcart-broker zcart-cart zcart-stock zcart-gateway zcart zcart-bench; do
  "/usr/bin/$b" --help >/dev/null || fail "/usr/bin/$b --help failed"
done
getent passwd zcart >/dev/null || fail "postinst made no zcart user"
# verify needs the instances' EnvironmentFiles; example ones, removed after.
tmpconf=()
for kind in broker cart stock gateway; do
  f=/etc/zcart/$kind-check.conf
  cp "/etc/zcart/$kind.conf.example" "$f"
  tmpconf+=("$f")
done
err=$(systemd-analyze verify zcart-broker@check.service zcart-cart@check.service \
        zcart-stock@check.service zcart-gateway@check.service 2>&1 >/dev/null) || fail "systemd-analyze verify failed: $err"
rm -f "${tmpconf[@]}"
[ -z "$err" ] || fail "systemd-analyze verify complained: $err"
dpkg -r zcart >/dev/null || fail "dpkg -r failed"
[ ! -e /usr/bin/zcart-broker ] || fail "dpkg -r left /usr/bin/zcart-broker"
[ ! -e /lib/systemd/system/zcart-broker@.service ] || fail "dpkg -r left the units"
dpkg --purge zcart >/dev/null || fail "dpkg --purge failed"
[ ! -e /etc/zcart/broker.conf.example ] || fail "purge left /etc/zcart"
! getent passwd zcart >/dev/null || fail "purge left the zcart user"
# The container example parses (no engine needed for `config -q`).
(cd deploy/docker && docker-compose config -q) || fail "deploy/docker/docker-compose.yml: docker-compose config -q failed"
echo "check-package: built, installed, verified, removed; docker-compose.yml valid: OK"
