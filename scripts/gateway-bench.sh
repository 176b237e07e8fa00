#!/usr/bin/env bash
# Measures what the HTTP gateway costs: PUT and GET of 256-byte values through
# conclave-gateway (wrk, HTTP/1.1 keep-alive) against the same operations sent directly
# over gRPC (conclave-bench), on one fresh 3-member cluster on loopback.
#
#   scripts/gateway-bench.sh              # 10 s per run, 16 concurrent clients
#   DURATION=20 CLIENTS=32 scripts/gateway-bench.sh
#
# Prints a Markdown table (and writes it to $OUT, default target/gateway-bench.md).
# Needs wrk (installed with apt-get if missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-16}
OUT=${OUT:-target/gateway-bench.md}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else echo "install wrk" >&2; exit 1; fi
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p conclave-server --bin conclave -p conclave-bench -p conclave-gateway >&2
  cargo test --release -p conclave-gateway --test overhead --no-run >&2
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

base=${BASE_PORT:-41000}
cluster="b1=http://127.0.0.1:$((base+1)),b2=http://127.0.0.1:$((base+3)),b3=http://127.0.0.1:$((base+5))"
for i in 1 2 3; do
  client=$((base + 2*i - 2 + 100)); peer=$((base + 2*i - 1))
  target/release/conclave --name "b$i" --data-dir "$work/b$i" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$cluster" --initial-cluster-token gateway-bench >"$work/b$i.log" 2>&1 &
  pids+=($!)
done
n1="127.0.0.1:$((base+100))"
endpoints="$n1,127.0.0.1:$((base+102)),127.0.0.1:$((base+104))"
gw_port=$((base+200))
# The gateway gets n1 only, as the direct runs do (given all three, its SDK would
# spread requests over them).
target/release/conclave-gateway --listen "127.0.0.1:$gw_port" --endpoints "$n1" --log-level warn \
  >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null || {
  echo "the cluster did not become ready:" >&2
  curl -s "http://127.0.0.1:$gw_port/readyz?verbose" >&2 || true
  tail -n 5 "$work"/*.log >&2
  exit 1
}

cat >"$work/put.lua" <<'LUA'
local counter = 0
local body = '{"value":"' .. string.rep("x", 256) .. '"}'
local headers = { ["Content-Type"] = "application/json" }
request = function()
  counter = counter + 1
  return wrk.format("PUT", string.format("/v1/kv/%%2Fbench%%2Fk%06d", counter % 10000), headers, body)
end
LUA
cat >"$work/get.lua" <<'LUA'
local counter = 0
request = function()
  counter = counter + 1
  -- Only keys the put run wrote (1..KEYS), so every get finds its key.
  local keys = tonumber(os.getenv("KEYS") or "9999")
  return wrk.format("GET", string.format("/v1/kv/%%2Fbench%%2Fk%06d", 1 + (counter * 7919) % keys) .. (os.getenv("QUERY") or ""))
end
response = function(status, headers, body)
  if status ~= 200 and os.getenv("WRK_SHOW_ERRORS") then io.stderr:write(status .. " " .. body .. "\n") end
end
LUA

# wrk (one thread: its Lua counter is per thread, so the put run writes keys 1..N in
# order) "Requests/sec" and the 99th percentile of its latency distribution (in ms).
wrk_run() { # script
  local text
  text=$(wrk -t1 -c"$CLIENTS" -d"${DURATION}s" --latency -s "$work/$1" "http://127.0.0.1:$gw_port")
  echo "$text" >&2
  local rps p99
  rps=$(echo "$text" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$text" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  local non2xx total
  non2xx=$(echo "$text" | awk '/Non-2xx/ {print $NF}')
  total=$(echo "$text" | awk '/requests in/ {print $1}')
  echo "$rps ${p99:-?} ${non2xx:-0} ${total:-0}"
}
# conclave-bench's throughput and p99 (ms) from its JSON report.
grpc_run() { # workload (range reads the keys the put run wrote)
  local json
  json=$(target/release/conclave-bench --endpoints "$n1" --clients "$CLIENTS" --duration "${DURATION}s" \
    --val-size 256 --key-space 10000 --json "$@")
  echo "$json" >&2
  python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(round(r["ops_per_sec"],1), round(r["latency_ms"]["p99"],2), r["errors"])' <<<"$json"
}

cat >"$work/livez.lua" <<'LUA'
request = function() return wrk.format("GET", "/livez") end
LUA
# The gateway's HTTP handling alone (no cluster call): an upper bound on what it adds.
read -r live_rps live_p99 live_err _ < <(wrk_run livez.lua)
read -r put_rps put_p99 put_err put_total < <(wrk_run put.lua)
export KEYS=$(( put_total > 10000 ? 9999 : put_total - 1 ))
read -r get_rps get_p99 get_err _ < <(QUERY="" wrk_run get.lua)
read -r sget_rps sget_p99 sget_err _ < <(QUERY="?serializable=true" wrk_run get.lua)
read -r gput_rps gput_p99 gput_err < <(grpc_run put)
read -r gget_rps gget_p99 gget_err < <(grpc_run range)
read -r gsget_rps gsget_p99 gsget_err < <(grpc_run range --no-preload --consistency s)

# The SDK's own figures (the gateway's client, straight to the member): put, get,
# serializable get, as "name rps p99 errors" lines.
sdk=$(BENCH_ENDPOINT="$n1" BENCH_CLIENTS="$CLIENTS" BENCH_SECONDS="$DURATION" BENCH_KEYS="$KEYS" \
  cargo test --release -q -p conclave-gateway --test overhead -- --ignored --nocapture 2>/dev/null | grep '^BENCH ')
echo "$sdk" >&2
sdk_field() { echo "$sdk" | awk -v n="$1" -v f="$2" '$2 == n {print $f}'; }

ratio() { python3 -c "print(f'{float($1)/float($2):.2f}x')"; }
row() { # operation path rps p99 errors
  echo "| $1 | $2 | $3 | $4 | $5 |"
}
table=$(cat <<EOT
| operation | path | requests/s | p99 (ms) | errors |
| --- | --- | ---: | ---: | ---: |
$(row "GET /livez (no cluster call)" "gateway (HTTP, wrk)" "$live_rps" "$live_p99" "$live_err")
$(row put "gateway (HTTP/JSON, wrk)" "$put_rps" "$put_p99" "$put_err")
$(row put "direct gRPC, SDK" "$(sdk_field put 3)" "$(sdk_field put 4)" "$(sdk_field put 5)")
$(row put "direct gRPC, conclave-bench" "$gput_rps" "$gput_p99" "$gput_err")
$(row get "gateway (HTTP/JSON, wrk)" "$get_rps" "$get_p99" "$get_err")
$(row get "direct gRPC, SDK" "$(sdk_field get 3)" "$(sdk_field get 4)" "$(sdk_field get 5)")
$(row get "direct gRPC, conclave-bench" "$gget_rps" "$gget_p99" "$gget_err")
$(row "serializable get" "gateway (HTTP/JSON, wrk)" "$sget_rps" "$sget_p99" "$sget_err")
$(row "serializable get" "direct gRPC, SDK" "$(sdk_field serializable_get 3)" "$(sdk_field serializable_get 4)" "$(sdk_field serializable_get 5)")
$(row "serializable get" "direct gRPC, conclave-bench" "$gsget_rps" "$gsget_p99" "$gsget_err")

Gateway throughput relative to the SDK direct: put $(ratio "$put_rps" "$(sdk_field put 3)"), get $(ratio "$get_rps" "$(sdk_field get 3)"), serializable get $(ratio "$sget_rps" "$(sdk_field serializable_get 3)").
$CLIENTS concurrent clients, ${DURATION} s per run, 256-byte values over 10,000 keys, one member (n1) behind the gateway and for the direct runs; gets are linearizable unless marked.
EOT
)
mkdir -p "$(dirname "$OUT")"
echo "$table" | tee "$OUT"
