#!/usr/bin/env bash
# A short scripted session against the local cluster started by `make run`:
# assign a cart, add and remove products, hit the stock limits, look at the
# cluster, close the session.  Usage: scripts/demo.sh RUN_DIR BIN_DIR
set -euo pipefail
run_dir=${1:-run}
bin=${2:-build/bin}
# shellcheck disable=SC1090,SC1091
set -a   # ZCART_BROKERS, ZCART_SERVER_KEY, ZCART_CERT (secure by default)
source "$run_dir/env"
set +a
zcart="$bin/zcart"

step() { printf '\n\033[1m$ zcart %s\033[0m\n' "$*"; }

step "add apple 3        # first add: the broker assigns a free cart"
out=$("$zcart" --json add apple 3)
session=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["session"])')
"$zcart" --session "$session" list
export ZCART_SESSION=$session
echo "(session $session)"

step "add banana 2"
"$zcart" add banana 2
step "remove apple 1"
"$zcart" remove apple 1
step "add truffle 5      # only 2 in stock: KO OUT_OF_STOCK"
"$zcart" add truffle 5 || true
step "add unobtainium 1  # not in the catalog: KO UNKNOWN_PRODUCT"
"$zcart" add unobtainium 1 || true
step "list"
"$zcart" list
step "status"
"$zcart" status
step "close              # the cart is emptied and returns to the free list"
"$zcart" close

if [ -n "${ZCART_GATEWAY:-}" ]; then
  printf '\n\033[1m# the same over HTTP: zcart-gateway at %s (docs/openapi.yaml)\033[0m\n' "$ZCART_GATEWAY"
  rest_session=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  curl -sS -X POST -H "Authorization: Bearer $ZCART_GATEWAY_TOKEN" \
       -H 'Idempotency-Key: demo-1' -d '{"product": "apple", "qty": 1}' \
       "$ZCART_GATEWAY/v1/sessions/$rest_session/items"
  echo
  curl -sS -X DELETE -H "Authorization: Bearer $ZCART_GATEWAY_TOKEN" \
       "$ZCART_GATEWAY/v1/sessions/$rest_session"
  echo
fi

leader=$("$zcart" --json status | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print(next(("broker%d" % x["id"] for x in r["replicas"] if x.get("role") == "leader"), "broker1"))')

cat <<EOF

The cluster keeps running (logs and data in $run_dir/).  Try:
  set -a; . $run_dir/env; set +a       # exports ZCART_BROKERS, ZCART_SERVER_KEY, ZCART_CERT
  $bin/zcart add pear 1            # prints a new session id
  $bin/zcart --session ID list
  $bin/zcart shell                 # one session, commands on stdin
  $bin/zcart status
  $bin/zcart --cert $run_dir/keys/admin.cert_secret admin transfer-leader   # admin key only
  deploy/local/zcart-cluster status --dir $run_dir
  deploy/local/zcart-cluster kill $leader --dir $run_dir    # kill -9 the leader: a failover drill
  deploy/local/zcart-cluster start $leader --dir $run_dir   # it rejoins and catches up
Stop it with: make stop   (or deploy/local/zcart-cluster down --dir $run_dir)
EOF
if [ -n "${ZCART_GATEWAY:-}" ]; then
  cat <<EOF

REST API:  $ZCART_GATEWAY/v1/...  with 'Authorization: Bearer \$ZCART_GATEWAY_TOKEN' (docs/openapi.yaml)
Dashboard: $ZCART_GATEWAY/#token=$ZCART_GATEWAY_TOKEN
EOF
fi
