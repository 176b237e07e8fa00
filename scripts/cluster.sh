#!/usr/bin/env bash
# Starts a local 3-member Conclave cluster on loopback, data in ./data/<name>, logs in
# ./data/<name>.log. Stays in the foreground; Ctrl-C stops every member (SIGTERM, so a
# leader hands over leadership first).
#   scripts/cluster.sh            build (release) and start
#   CONCLAVE_BIN=path scripts/cluster.sh   use an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CONCLAVE_BIN:-target/release/conclave}
if [ -z "${CONCLAVE_BIN:-}" ]; then
  cargo build --release -p conclave-server --bin conclave
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
cat <<EOT
Conclave: 3 members on loopback (data and logs in ./data)
  n1  client http://127.0.0.1:2379   peer http://127.0.0.1:2380
  n2  client http://127.0.0.1:22379  peer http://127.0.0.1:22380
  n3  client http://127.0.0.1:32379  peer http://127.0.0.1:32380

Try it (etcdctl from Debian's etcd-client package):
  etcdctl --endpoints=$endpoints put hello world
  etcdctl --endpoints=$endpoints get hello
  etcdctl --endpoints=$endpoints endpoint status -w table

Ctrl-C stops the cluster.
EOT
wait "${pids[@]}"
