#!/usr/bin/env bash
# Starts a local 3-member Conclave cluster on loopback, data in ./data/<name>, logs in
# ./data/<name>.log, and an HTTP gateway on 127.0.0.1:8080 (log ./data/gateway.log).
# Stays in the foreground; Ctrl-C stops everything (SIGTERM: a leader hands over
# leadership first, the gateway drains).
#   scripts/cluster.sh            build (release) and start
#   CONCLAVE_BIN=path CONCLAVE_GATEWAY_BIN=path scripts/cluster.sh   use built binaries
#   TLS=1 scripts/cluster.sh      (make cluster TLS=1) the same with TLS everywhere:
#     data and logs in ./data/tls (a member's data dir remembers its peer URLs, so the two
#     clusters are kept apart), certificates from scripts/gen-certs.sh in
#     ./data/tls/certs, https:// client and peer URLs,
#     --client-cert-auth and --peer-client-cert-auth, the gateway on HTTPS presenting a
#     client certificate to the members
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CONCLAVE_BIN:-target/release/conclave}
gateway=${CONCLAVE_GATEWAY_BIN:-target/release/conclave-gateway}
if [ -z "${CONCLAVE_BIN:-}" ] || [ -z "${CONCLAVE_GATEWAY_BIN:-}" ]; then
  cargo build --release -p conclave-server --bin conclave -p conclave-gateway --bin conclave-gateway \
    -p conclave-cli --bin conclavectl
fi

data=data
scheme=http
node_tls=()
gateway_tls=()
client_tls=""
curl_tls=""
if [ "${TLS:-0}" != "0" ]; then
  scheme=https
  data=data/tls
  tls=data/tls/certs
  [ -f "$tls/n3-peer.pem" ] || scripts/gen-certs.sh "$tls" n1 n2 n3 n1-peer n2-peer n3-peer gateway root
  gateway_tls=(--cacert "$tls/ca.pem" --cert "$tls/gateway.pem" --key "$tls/gateway-key.pem"
    --tls-cert "$tls/gateway.pem" --tls-key "$tls/gateway-key.pem")
  client_tls="--cacert=$tls/ca.pem --cert=$tls/root.pem --key=$tls/root-key.pem"
  curl_tls="--cacert $tls/ca.pem "
fi
mkdir -p "$data"
cluster="n1=$scheme://127.0.0.1:2380,n2=$scheme://127.0.0.1:22380,n3=$scheme://127.0.0.1:32380"
pids=()
stop() {
  echo
  echo "stopping members..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

start_member() { # name client_port peer_port
  if [ "$scheme" = https ]; then
    node_tls=(--cert-file "$tls/$1.pem" --key-file "$tls/$1-key.pem" --trusted-ca-file "$tls/ca.pem"
      --client-cert-auth --peer-cert-file "$tls/$1-peer.pem" --peer-key-file "$tls/$1-peer-key.pem"
      --peer-trusted-ca-file "$tls/ca.pem" --peer-client-cert-auth)
  fi
  "$bin" --name "$1" --data-dir "$data/$1" \
    --listen-client-urls "$scheme://127.0.0.1:$2" --advertise-client-urls "$scheme://127.0.0.1:$2" \
    --listen-peer-urls "$scheme://127.0.0.1:$3" --initial-advertise-peer-urls "$scheme://127.0.0.1:$3" \
    --initial-cluster "$cluster" --initial-cluster-token conclave-local \
    ${node_tls[@]+"${node_tls[@]}"} >>"$data/$1.log" 2>&1 &
  pids+=($!)
}
start_member n1 2379 2380
start_member n2 22379 22380
start_member n3 32379 32380

endpoints="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
[ "$scheme" = https ] && endpoints="https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379"
"$gateway" --listen 127.0.0.1:8080 --endpoints "$endpoints" --drain-delay 0 \
  ${gateway_tls[@]+"${gateway_tls[@]}"} >>"$data/gateway.log" 2>&1 &
pids+=($!)
ctl="--endpoints=$endpoints${client_tls:+ $client_tls}"
cat <<EOT
Conclave: 3 members on loopback (data and logs in ./$data${client_tls:+; certificates in ./$tls})
  n1  client $scheme://127.0.0.1:2379   peer $scheme://127.0.0.1:2380
  n2  client $scheme://127.0.0.1:22379  peer $scheme://127.0.0.1:22380
  n3  client $scheme://127.0.0.1:32379  peer $scheme://127.0.0.1:32380
  gateway    $scheme://127.0.0.1:8080 (REST /v1, etcd JSON /v3, /readyz, /metrics, /openapi.json)

Try it over HTTP:
  curl ${curl_tls}-X PUT $scheme://127.0.0.1:8080/v1/kv/hello -d '{"value": "world"}'
  curl ${curl_tls}$scheme://127.0.0.1:8080/v1/kv/hello
  curl ${curl_tls}-N "$scheme://127.0.0.1:8080/v1/watch?prefix=hello"     # Server-Sent Events; Ctrl-C to stop

With conclavectl (target/release/conclavectl) or etcdctl (Debian's etcd-client):
  target/release/conclavectl $ctl get hello
  target/release/conclavectl $ctl endpoint status --cluster -w table
  etcdctl $ctl put hello world
  etcdctl $ctl get hello
  etcdctl $ctl endpoint status -w table

Ctrl-C stops the cluster.
EOT
wait "${pids[@]}"
