#!/usr/bin/env bash
# `make bench`: Conclave vs etcd 3.4, side by side, on this machine.
#
#  1. builds conclave + conclave-bench (release) and installs Debian's etcd-server and
#     etcd-client when `etcd` is missing;
#  2. starts a 3-member Conclave cluster and a 3-member etcd cluster on loopback (own ports,
#     data under a temp dir in target/, heartbeat 100 ms / election 1000 ms for both);
#  3. measures the disk's fsync latency (conclave-bench fsync-probe, on the data dirs' disk);
#  4. runs the workload set alternately: for each workload Conclave, then etcd, with the same
#     conclave-bench command line;
#  5. the TLS rows: put and linearizable range, each on a fresh plaintext Conclave cluster
#     (p1..p3) and on a fresh one (t1..t3) with TLS on every port, one right after the other;
#  6. reads each member's peak RSS (VmHWM) and data-dir size, and writes docs/benchmarks.md.
# Every process it started is stopped on exit, Ctrl-C or failure (the temp dir is kept after
# a failure, for the logs).
#
#   BENCH_DURATION=15s   length of each measured run
#   BENCH_KEEP=1         keep the temp dir (data dirs, logs, JSON results)
#   BENCH_OUT=path       where to write the document (default docs/benchmarks.md)
#   BENCH_WORKLOADS="put-64 ..."  run only these workloads (names below; "none" for just
#                        the TLS rows), for a quick look: write BENCH_OUT elsewhere then
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${BENCH_DURATION:-15s}
out=${BENCH_OUT:-docs/benchmarks.md}

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- 1. binaries and etcd -----------------------------------------------------------------
log "building release binaries"
cargo build --release -p conclave-server -p conclave-bench
conclave=$root/target/release/conclave
bench=$root/target/release/conclave-bench

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "etcd is missing: run as root or install etcd-server etcd-client"
    sudo=sudo
  fi
  log "installing etcd-server and etcd-client (Debian)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p')
case $etcd_version in 3.4.*) ;; *) echo "warning: etcd $etcd_version is not 3.4" >&2 ;; esac

# --- 2. clusters ------------------------------------------------------------------------------
# Other builds and test clusters on this machine skew every figure: note which workloads
# overlapped one (processes named rustc, cargo, conclave or etcd besides our nine members).
others_running() {
  local n
  n=$(pgrep -c -x 'rustc|cargo|conclave|etcd' 2>/dev/null || true)
  echo $((n - ${#pids[@]}))
}
pids=()
busy_at=()
[ "$(others_running)" -gt 0 ] && busy_at+=(start)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p target
work=$(mktemp -d "$root/target/bench.XXXXXX")
results=$work/results
mkdir -p "$results"

names=() systems=() dirs=()
cleanup() { # exit status
  local rc=$1
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      local alive=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break
      sleep 0.2
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -eq 1 ]; then
    echo "kept $work (data dirs, logs, results)" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every port is below the kernel's ephemeral range (32768-60999 by default), so no
# member's outgoing connection can hold one as its local port when a later member binds it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 12379 12380 13379 13380 14379 14380 15379 15380 16379 16380 17379 17380 \
  18379 18380 19379 19380 20379 20380 25379 25380 26379 26380 27379 27380; do
  port_free "$p" || die "port $p is in use (another bench still running?)"
done

timing=(--heartbeat-interval 100 --election-timeout 1000)
conclave_cluster="c1=http://127.0.0.1:12380,c2=http://127.0.0.1:13380,c3=http://127.0.0.1:14380"
etcd_cluster="e1=http://127.0.0.1:25380,e2=http://127.0.0.1:26380,e3=http://127.0.0.1:27380"
conclave_eps="127.0.0.1:12379,127.0.0.1:13379,127.0.0.1:14379"
etcd_eps="127.0.0.1:25379,127.0.0.1:26379,127.0.0.1:27379"

# The TLS rows compare two clusters with the same history: a plaintext one (p1..p3) and
# one with TLS (t1..t3), both fresh when the rows run (c1..c3 has the whole workload set
# behind it by then, which alone makes it slower).
plain_cluster="p1=http://127.0.0.1:18380,p2=http://127.0.0.1:19380,p3=http://127.0.0.1:20380"
plain_eps="127.0.0.1:18379,127.0.0.1:19379,127.0.0.1:20379"
# The TLS cluster: certificates from scripts/gen-certs.sh (ECDSA P-256), mutual TLS on
# both ports, as `make cluster TLS=1` runs it.
tls_cluster="t1=https://127.0.0.1:15380,t2=https://127.0.0.1:16380,t3=https://127.0.0.1:17380"
tls_eps="https://127.0.0.1:15379,https://127.0.0.1:16379,https://127.0.0.1:17379"
certs=$work/certs
scripts/gen-certs.sh "$certs" t1 t2 t3 t1-peer t2-peer t3-peer bench
tls_client=(--cacert "$certs/ca.pem" --cert "$certs/bench.pem" --key "$certs/bench-key.pem")

start_member() { # system binary name client_port peer_port cluster token
  local system=$1 bin=$2 name=$3 cport=$4 pport=$5 cluster=$6 token=$7
  local dir=$work/$system/$name scheme=http tls=()
  if [ "$system" = conclave-tls ]; then
    scheme=https
    tls=(--cert-file "$certs/$name.pem" --key-file "$certs/$name-key.pem"
      --trusted-ca-file "$certs/ca.pem" --client-cert-auth
      --peer-cert-file "$certs/$name-peer.pem" --peer-key-file "$certs/$name-peer-key.pem"
      --peer-trusted-ca-file "$certs/ca.pem" --peer-client-cert-auth)
  fi
  mkdir -p "$work/$system"
  local args=(--name "$name" --data-dir "$dir"
    --listen-client-urls "$scheme://127.0.0.1:$cport" --advertise-client-urls "$scheme://127.0.0.1:$cport"
    --listen-peer-urls "$scheme://127.0.0.1:$pport" --initial-advertise-peer-urls "$scheme://127.0.0.1:$pport"
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token"
    "${timing[@]}" ${tls[@]+"${tls[@]}"})
  # A session of its own: Ctrl-C reaches only this script, whose trap stops the members
  # (both etcd and conclave would otherwise catch SIGINT and shut down mid-run).
  setsid "$bin" "${args[@]}" >"$work/$system/$name.log" 2>&1 </dev/null &
  pids+=($!) names+=("$name") systems+=("$system") dirs+=("$dir")
  echo "$(basename "$bin") ${args[*]}" | sed "s|$work|\$WORK|g" >>"$results/commands.txt"
}

log "starting Conclave (c1..c3) and etcd $etcd_version (e1..e3) in $work"
echo "# \$WORK: a fresh temp dir under target/ (the repository's disk). Conclave:" >"$results/commands.txt"
start_member conclave "$conclave" c1 12379 12380 "$conclave_cluster" conclave-bench
start_member conclave "$conclave" c2 13379 13380 "$conclave_cluster" conclave-bench
start_member conclave "$conclave" c3 14379 14380 "$conclave_cluster" conclave-bench
echo "# etcd:" >>"$results/commands.txt"
start_member etcd "$(command -v etcd)" e1 25379 25380 "$etcd_cluster" etcd-bench
start_member etcd "$(command -v etcd)" e2 26379 26380 "$etcd_cluster" etcd-bench
start_member etcd "$(command -v etcd)" e3 27379 27380 "$etcd_cluster" etcd-bench
echo "# Conclave plaintext and with TLS, for the TLS rows (\$WORK/certs from scripts/gen-certs.sh):" >>"$results/commands.txt"
start_member conclave-plain "$conclave" p1 18379 18380 "$plain_cluster" conclave-plain-bench
start_member conclave-plain "$conclave" p2 19379 19380 "$plain_cluster" conclave-plain-bench
start_member conclave-plain "$conclave" p3 20379 20380 "$plain_cluster" conclave-plain-bench
start_member conclave-tls "$conclave" t1 15379 15380 "$tls_cluster" conclave-tls-bench
start_member conclave-tls "$conclave" t2 16379 16380 "$tls_cluster" conclave-tls-bench
start_member conclave-tls "$conclave" t3 17379 17380 "$tls_cluster" conclave-tls-bench
{
  echo "CONCLAVE=$conclave_eps"
  echo "ETCD=$etcd_eps"
} >>"$results/commands.txt"

check_alive() {
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null ||
      die "${systems[$i]} member ${names[$i]} exited; log: $work/${systems[$i]}/${names[$i]}.log (kept)"
  done
}
wait_healthy() { # endpoints [etcdctl TLS flags...]
  local eps=$1
  shift
  for _ in $(seq 120); do
    check_alive
    if etcdctl --endpoints="$eps" --command-timeout=2s "$@" endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  die "cluster $1 did not become healthy in 60 s"
}
wait_healthy "$conclave_eps"
wait_healthy "$etcd_eps"
wait_healthy "$plain_eps"
wait_healthy "$tls_eps" "${tls_client[@]}"
echo "all four clusters healthy" >&2

# --- 3. disk ---------------------------------------------------------------------------------
log "fsync probe ($work)"
"$bench" fsync-probe --dir "$work" --count 200 --size 4096 --out "$results/fsync.json"
echo "conclave-bench fsync-probe --dir \$WORK --count 200 --size 4096" >>"$results/commands.txt"

# --- 4. workloads ----------------------------------------------------------------------------
# name | title | conclave-bench arguments (after --endpoints)
d=$duration
workloads=(
  "put-64|put, 64 clients|--conns 8 --clients 64 --duration $d put"
  "put-256|put, 256 clients|--conns 16 --clients 256 --duration $d put"
  "range-l-256|linearizable range, 256 clients|--conns 16 --clients 256 --duration $d range --consistency l"
  "range-s-256|serializable range, 256 clients|--conns 16 --clients 256 --duration $d range --consistency s"
  "mixed-90-64|mixed 90% linearizable reads / 10% puts, 64 clients|--conns 8 --clients 64 --duration $d mixed --read-ratio 0.9"
  "txn-cas-32|txn compare-and-swap on 8 hot keys, 32 clients|--conns 4 --clients 32 --duration $d txn --hot-keys 8"
  "watch-100|watch: 100 watchers on one prefix, 100 puts/s by 4 writers|--conns 4 --clients 4 --duration $d watch --watchers 100 --put-rate 100"
  "lease-32|lease churn (grant + keep-alive + revoke), 32 clients|--conns 4 --clients 32 --duration $d lease --ttl 10"
)
: >"$results/workloads.tsv"
failed=0
for w in "${workloads[@]}"; do
  IFS='|' read -r name title args <<<"$w"
  if [ -n "${BENCH_WORKLOADS:-}" ] && [[ " $BENCH_WORKLOADS " != *" $name "* ]]; then
    continue
  fi
  printf '%s\t%s\t%s\n' "$name" "$title" "$args" >>"$results/workloads.tsv"
  [ "$(others_running)" -gt 0 ] && busy_at+=("$name")
  for system in conclave etcd; do
    eps=$conclave_eps
    [ "$system" = etcd ] && eps=$etcd_eps
    log "$name on $system: conclave-bench $args"
    # shellcheck disable=SC2086 # args is a word list on purpose
    if ! "$bench" --endpoints "$eps" --out "$results/$name.$system.json" $args; then
      echo "bench: $name on $system failed" >&2
      failed=$((failed + 1))
    fi
    check_alive
    sleep 2
  done
done

# --- 5. TLS -------------------------------------------------------------------------------------
# name | conclave-bench arguments: each on the plaintext cluster, then on the TLS one.
tls_workloads=(
  "tls-put|--conns 16 --clients 256 --duration $d put"
  "tls-range-l|--conns 16 --clients 256 --duration $d range --consistency l"
)
: >"$results/tls.tsv"
for w in "${tls_workloads[@]}"; do
  IFS='|' read -r name args <<<"$w"
  printf '%s\t%s\n' "$name" "$args" >>"$results/tls.tsv"
  [ "$(others_running)" -gt 0 ] && busy_at+=("$name")
  for variant in plain tls; do
    eps=$plain_eps extra=()
    [ "$variant" = tls ] && eps=$tls_eps extra=("${tls_client[@]}")
    log "$name on conclave ($variant): conclave-bench ${extra[*]+${extra[*]}} $args"
    # shellcheck disable=SC2086 # args is a word list on purpose
    if ! "$bench" --endpoints "$eps" ${extra[@]+"${extra[@]}"} --out "$results/$name.$variant.json" $args; then
      echo "bench: $name ($variant) failed" >&2
      failed=$((failed + 1))
    fi
    check_alive
    sleep 2
  done
done

# --- 6. resources and the document ----------------------------------------------------------
log "peak RSS and data-dir sizes"
: >"$results/nodes.tsv"
for i in "${!pids[@]}"; do
  # The Conclave vs etcd table compares the plaintext clusters.
  [ "${systems[$i]}" = conclave ] || [ "${systems[$i]}" = etcd ] || continue
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${pids[$i]}/status" 2>/dev/null || echo 0)
  size=$(du -sb "${dirs[$i]}" | cut -f1)
  printf '%s\t%s\t%s\t%s\n' "${systems[$i]}" "${names[$i]}" "${hwm:-0}" "$size" | tee -a "$results/nodes.tsv" >&2
done

busy="no other build or cluster (rustc, cargo, conclave, etcd) seen at the start or at any workload"
if [ ${#busy_at[@]} -gt 0 ]; then
  busy="**other builds or test clusters (rustc, cargo, conclave, etcd processes) were running** at: ${busy_at[*]}; those figures are noisier"
fi
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc=$(nproc)"
  echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "load_before=$load_before"
  echo "busy=$busy"
  echo "conclave_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "etcd_version=${etcd_version%%.*}.$(echo "$etcd_version" | cut -d. -f2)"
  echo "etcd_full_version=etcd $etcd_version ($(dpkg-query -W -f='Debian ${Package} ${Version}' etcd-server 2>/dev/null || echo 'not from Debian'))"
} >"$results/machine.env"

mkdir -p "$(dirname "$out")"
"$bench" render --results "$results" >"$out"
log "wrote $out"
[ "$failed" -eq 0 ] || die "$failed workload run(s) failed; see above"
