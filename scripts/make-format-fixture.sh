#!/usr/bin/env bash
# Writes the data-dir fixture of the on-disk format: a single-member cluster's data dir,
# produced by a `conclave` binary through the etcd API, packed as
#   crates/server/tests/golden/datadir-v1.tar.gz
# together with what etcdctl read back before the member was stopped:
#   crates/server/tests/golden/datadir-v1.expected.json
# crates/server/tests/format_upgrade.rs opens the fixture with the current build and checks
# that it serves exactly that. Regenerate it only with the build whose format it pins (the
# fixture of format v1 was written by the build before the format module existed); a new
# format gets a fixture of its own (datadir-v2...) instead of replacing this one.
#
# Usage: scripts/make-format-fixture.sh [conclave binary]
#   default binary: $CONCLAVE_BIN, else target/release/conclave
#   CONCLAVE_FIXTURE_CLIENT_PORT / CONCLAVE_FIXTURE_PEER_PORT override the loopback ports.
#
# The member is started with exactly these flags (the test restarts it with the same name
# and token; a data dir refuses any other):
#   --name fixture --initial-cluster-token format-fixture-v1
#   --initial-cluster fixture=http://127.0.0.1:$PEER_PORT
#   --snapshot-count 50 --snapshot-catchup-entries 10 --lease-checkpoint-interval 1000
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-${CONCLAVE_BIN:-$ROOT/target/release/conclave}}"
ETCDCTL="${ETCDCTL:-/usr/bin/etcdctl}"
OUT="$ROOT/crates/server/tests/golden"
NAME=fixture
TOKEN=format-fixture-v1
CLIENT_PORT="${CONCLAVE_FIXTURE_CLIENT_PORT:-23790}"
PEER_PORT="${CONCLAVE_FIXTURE_PEER_PORT:-23800}"
CLIENT_URL="http://127.0.0.1:$CLIENT_PORT"
PEER_URL="http://127.0.0.1:$PEER_PORT"
# The largest TTL the server grants (mvcc::MAX_LEASE_TTL, ~285 years): the lease cannot
# expire whenever the test runs.
LEASE_TTL=9000000000

[ -x "$BIN" ] || { echo "no conclave binary at $BIN: build it with cargo build --release -p conclave-server --bin conclave" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

mkdir -p "$OUT"
WORK="$(mktemp -d)"
DATA="$WORK/data"
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

export ETCDCTL_API=3
# host:port, not a URL: etcdctl 3.4 mangles a URL endpoint for `endpoint status`.
ctl() { "$ETCDCTL" --endpoints="127.0.0.1:$CLIENT_PORT" --command-timeout=10s "$@"; }

"$BIN" --name "$NAME" --data-dir "$DATA" \
    --listen-client-urls "$CLIENT_URL" --advertise-client-urls "$CLIENT_URL" \
    --listen-peer-urls "$PEER_URL" --initial-advertise-peer-urls "$PEER_URL" \
    --initial-cluster "$NAME=$PEER_URL" --initial-cluster-token "$TOKEN" \
    --snapshot-count 50 --snapshot-catchup-entries 10 --lease-checkpoint-interval 1000 \
    >"$WORK/node.log" 2>&1 &
PID=$!

for _ in $(seq 1 100); do
    if ctl put fixture/ready yes >/dev/null 2>&1; then break; fi
    sleep 0.1
done
ctl del fixture/ready >/dev/null

# History: 4 rounds of puts over 20 keys.
for round in 1 2 3 4; do
    for i in $(seq -w 0 19); do
        ctl put "fixture/k$i" "v$round-$i" >/dev/null
    done
done
# Deletes: single keys and a range.
ctl del fixture/k19 >/dev/null
ctl del fixture/k18 >/dev/null
for i in 1 2 3; do ctl put "fixture/tmp/$i" "t$i" >/dev/null; done
ctl del --prefix fixture/tmp/ >/dev/null

# Compact at the current revision; history below it is gone.
COMPACT_REV="$(ctl get fixture/k00 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')"
ctl compact "$COMPACT_REV" >/dev/null

# A txn whose compare holds, and one whose compare fails.
ctl txn >/dev/null <<EOF
value("fixture/k00") = "v4-00"

put fixture/txn/ok yes
put fixture/k01 txn-value
del fixture/k02

put fixture/txn/unexpected yes

EOF
ctl txn >/dev/null <<EOF
value("fixture/k00") = "wrong"

put fixture/txn/unexpected yes

put fixture/txn/failure-branch yes

EOF

# A lease with an attached key.
LEASE_HEX="$(ctl lease grant "$LEASE_TTL" | awk '{print $2}')"
ctl put --lease="$LEASE_HEX" fixture/leased "held by the lease" >/dev/null

# More history after the compaction, enough to pass the second snapshot, so the
# log holds entries after the last snapshot.
for i in $(seq -w 0 17); do
    ctl put "fixture/k$i" "v5-$i" >/dev/null
done
ctl put fixture/k03 "after-snapshot" >/dev/null
ctl put fixture/k04 "after-snapshot" >/dev/null
sleep 2 # lets the leader checkpoint the lease (a LeaseCheckpoint entry in the log)

STATUS="$(ctl endpoint status -w json)"
RAFT_INDEX="$(echo "$STATUS" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["raftIndex"])')"
SNAPS="$(ls "$DATA/snapshots/g1/")"
SNAP_INDEX="$(echo "$SNAPS" | sed -n 's/^0*\([0-9][0-9]*\)-.*\.snap$/\1/p' | tail -1)"
[ -n "$SNAP_INDEX" ] || { echo "no snapshot was taken: $SNAPS" >&2; exit 1; }
if [ "$RAFT_INDEX" -le "$SNAP_INDEX" ]; then
    echo "the log holds nothing after the snapshot at $SNAP_INDEX (raft index $RAFT_INDEX)" >&2
    exit 1
fi

# What etcdctl reads back: every key, the revision, the lease, one old revision.
KVS="$(ctl get "" --from-key -w json)"
HISTORY_REV=$((COMPACT_REV + 1))
HISTORY="$(ctl get fixture/k00 --rev="$HISTORY_REV" -w json)"
LEASE="$(ctl lease timetolive "$LEASE_HEX" --keys -w json)"

# python, not jq: lease ids use all 63 bits, which jq's doubles round.
NAME="$NAME" TOKEN="$TOKEN" PEER_URL="$PEER_URL" COMPACT_REV="$COMPACT_REV" \
LEASE_TTL="$LEASE_TTL" RAFT_INDEX="$RAFT_INDEX" SNAP_INDEX="$SNAP_INDEX" \
HISTORY_REV="$HISTORY_REV" LEASE_HEX="$LEASE_HEX" KVS="$KVS" HISTORY="$HISTORY" LEASE="$LEASE" \
python3 - >"$OUT/datadir-v1.expected.json.tmp" <<'PY'
import base64, json, os
env = os.environ
text = lambda b64: base64.b64decode(b64 or "").decode()
kvs, history, lease = (json.loads(env[k]) for k in ("KVS", "HISTORY", "LEASE"))
print(json.dumps({
    "member": {"name": env["NAME"], "initial_cluster_token": env["TOKEN"],
               "peer_url": env["PEER_URL"]},
    "revision": kvs["header"]["revision"],
    "compact_revision": int(env["COMPACT_REV"]),
    "raft_index": int(env["RAFT_INDEX"]),
    "snapshot_index": int(env["SNAP_INDEX"]),
    "kvs": [{"key": text(kv["key"]), "value": text(kv.get("value")),
             "create_revision": kv["create_revision"], "mod_revision": kv["mod_revision"],
             "version": kv["version"], "lease": kv.get("lease", 0)} for kv in kvs["kvs"]],
    "history": {"key": "fixture/k00", "revision": int(env["HISTORY_REV"]),
                "value": text(history["kvs"][0]["value"])},
    "lease": {"id": int(env["LEASE_HEX"], 16), "granted_ttl": int(env["LEASE_TTL"]),
              "keys": [text(k) for k in lease.get("keys", [])]},
}, indent=2))
PY

# A clean stop: SIGTERM, then wait for the process to exit.
kill -TERM "$PID"
for _ in $(seq 1 200); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then echo "member did not stop after SIGTERM" >&2; exit 1; fi
wait "$PID" || { echo "member exited with status $?" >&2; tail -20 "$WORK/node.log" >&2; exit 1; }
PID=""

mv "$OUT/datadir-v1.expected.json.tmp" "$OUT/datadir-v1.expected.json"
# Reproducible archive: sorted names, no owners, fixed times; sparse files stay sparse.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --sparse \
    -C "$DATA" -cf - . | gzip -9 -n >"$OUT/datadir-v1.tar.gz"

echo "data dir:"
du -sh --apparent-size "$DATA"; du -sh "$DATA"
find "$DATA" -type f -printf '%10s %P\n' | sort -k2
echo "raft index $RAFT_INDEX, snapshot at $SNAP_INDEX, compact revision $COMPACT_REV, lease $LEASE_HEX"
ls -l "$OUT/datadir-v1.tar.gz" "$OUT/datadir-v1.expected.json"
