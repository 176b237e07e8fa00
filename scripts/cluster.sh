#!/usr/bin/env bash
# Starts a local 3-member Conclave cluster on loopback, data in ./data/<name>, logs in
# ./data/<name>.log, and an HTTP gateway on 127.0.0.1:8080 (log ./data/gateway.log).
# Stays in the foreground; Ctrl-C stops everything (SIGTERM: a leader hands over
# leadership first, the gateway drains).
#   scripts/cluster.sh            build (release) and start
#   CONCLAVE_BIN=path CONCLAVE_GATEWAY_BIN=path scripts/cluster.sh   use built binaries
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CONCLAVE_BIN:-target/release/conclave}
gateway=${CONCLAVE_GATEWAY_BIN:-target/release/conclave-gateway}
if [ -z "${CONCLAVE_BIN:-}" ] || [ -z "${CONCLAVE_GATEWAY_BIN:-}" ]; then
  cargo build --release -p conclave-server --bin conclave -p conclave-gateway --bin conclave-gateway \
    -p conclave-cli --bin conclavectl
fi

mkdir -p data
cluster="n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380"
pids=()
stop() {
  echo
  echo "stopping members..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

start_member() { # name client_port peer_port
  "$bin" --name "$1" --data-dir "data/$1" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "$cluster" --initial-cluster-token conclave-local \
    >>"data/$1.log" 2>&1 &
  pids+=($!)
}
start_member n1 2379 2380
start_member n2 22379 22380
start_member n3 32379 32380

endpoints="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
"$gateway" --listen 127.0.0.1:8080 --endpoints "$endpoints" --drain-delay 0 >>data/gateway.log 2>&1 &
pids+=($!)
cat <<EOT
Conclave: 3 members on loopback (data and logs in ./data)
  n1  client http://127.0.0.1:2379   peer http://127.0.0.1:2380
  n2  client http://127.0.0.1:22379  peer http://127.0.0.1:22380
  n3  client http://127.0.0.1:32379  peer http://127.0.0.1:32380
  gateway    http://127.0.0.1:8080 (REST /v1, etcd JSON /v3, /readyz, /metrics, /openapi.json)

Try it over HTTP:
  curl -X PUT http://127.0.0.1:8080/v1/kv/hello -d '{"value": "world"}'
  curl http://127.0.0.1:8080/v1/kv/hello
  curl -N "http://127.0.0.1:8080/v1/watch?prefix=hello"     # Server-Sent Events; Ctrl-C to stop

With conclavectl (target/release/conclavectl) or etcdctl (Debian's etcd-client):
  target/release/conclavectl --endpoints=$endpoints get hello
  target/release/conclavectl --endpoints=$endpoints endpoint status --cluster -w table
  etcdctl --endpoints=$endpoints put hello world
  etcdctl --endpoints=$endpoints get hello
  etcdctl --endpoints=$endpoints endpoint status -w table

Ctrl-C stops the cluster.
EOT
wait "${pids[@]}"
