#!/usr/bin/env bash
# `make bench-controller`: the partition controller's figures, written to
# docs/benchmarks-controller.md.
#
#  1. placement and plan time for P = 4096, R = 3 with 10, 100 and 1,000 simulated
#     members, and the replicas a join or a leave moves against the ideal (pure core);
#  2. on a real 3-member cluster (loopback, temp dir under target/) with real
#     `partitioned-kv` instances as the group's members: kill -9 of the member leading the
#     most partitions until all of them have new leaders (several kills, default session
#     TTL 10 s), and a graceful leave (SIGTERM) until everything is handed over.
#
#   BENCH_KILLS=3        crashes measured
#   BENCH_SESSION_TTL=10s
#   BENCH_OUT=path       where to write the document (default docs/benchmarks-controller.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${BENCH_OUT:-docs/benchmarks-controller.md}
kills=${BENCH_KILLS:-3}
ttl=${BENCH_SESSION_TTL:-10s}

cargo build --release -p conclave-server --bin conclave -p conclave-bench -p conclave-partitioned-kv
bin=$root/target/release/conclave
bench=$root/target/release/conclave-bench
kv=$root/target/release/partitioned-kv

mkdir -p target
work=$(mktemp -d "$root/target/bench-controller.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then rm -rf "$work"; else echo "kept $work (logs)" >&2; fi
  exit $rc
}
trap cleanup EXIT INT TERM

echo "== placement (pure core)" >&2
placement=$("$bench" controller-placement --partitions 4096 --replicas 3 --members 10,100,1000 --rounds 5)

echo "== real cluster in $work" >&2
cluster="b1=http://127.0.0.1:44380,b2=http://127.0.0.1:45380,b3=http://127.0.0.1:46380"
start_member() { # name client_port peer_port
  setsid "$bin" --name "$1" --data-dir "$work/$1" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "$cluster" --initial-cluster-token controller-bench \
    >"$work/$1.log" 2>&1 </dev/null &
  pids+=($!)
}
start_member b1 44379 44380
start_member b2 45379 45380
start_member b3 46379 46380
endpoints="127.0.0.1:44379,127.0.0.1:45379,127.0.0.1:46379"
for _ in $(seq 100); do
  if "$bench" --endpoints "$endpoints" --total 1 put >/dev/null 2>&1; then break; fi
  sleep 0.2
done
failover=$("$bench" --endpoints "$endpoints" controller-failover --kv-bin "$kv" --kills "$kills" \
  --session-ttl "$ttl" --logs "$work/kv")

{
  echo "# Partition controller benchmarks"
  echo
  echo "Measured by \`make bench-controller\` (scripts/bench-controller.sh) on $(date -u +%Y-%m-%d), $(nproc) cores."
  echo
  echo "## Placement and plan (the pure core, simulated members)"
  echo
  echo "$placement"
  echo
  echo "\"moved\" counts replicas placed on a member that did not hold them (data to copy);"
  echo "the ideal of a join is the newcomer's share P·R/(N+1); a leave must move at least what the"
  echo "leaver held. \"placement + plan\" is what the controller computes when a member joins."
  echo
  echo "## Failover and hand-over (real cluster, real partitioned-kv instances)"
  echo
  echo "Group P = 64, R = 2, 3 instances, 3 storage members on loopback."
  echo
  echo "$failover"
} >"$out"
echo "wrote $out" >&2
