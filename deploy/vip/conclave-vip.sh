#!/bin/sh
# Moves a virtual IP with the leadership of a Conclave election. Use it as the hooks of
# `conclavectl elect run`:
#
#   conclavectl elect run /vip/web \
#     --on-elected '/usr/local/lib/conclave/conclave-vip.sh up 10.0.0.100/24 eth0' \
#     --on-lost    '/usr/local/lib/conclave/conclave-vip.sh down 10.0.0.100/24 eth0' \
#     -- /usr/sbin/haproxy -db -f /etc/haproxy/haproxy.cfg
#
# `up` adds the address (idempotently) and announces it with a gratuitous ARP, so that
# switches and neighbours send its traffic here at once instead of to the previous
# leader's MAC address; `down` removes it. The on-lost hook runs after the command was
# stopped and before the leader's lease could expire (keep it that quick: it is), so the
# next leader adds the address only once this one removed it (see docs/cli.md, "elect run",
# for the one case no process can cover: a SIGSTOP of the supervisor itself). Needs CAP_NET_ADMIN (root),
# `ip` (iproute2) and, for the announcement, `arping` (iputils-arping).
set -eu

usage() {
    echo "usage: $0 up|down ADDRESS/PREFIX DEVICE" >&2
    exit 2
}

[ $# -eq 3 ] || usage
action=$1
vip=$2
device=$3

case "$action" in
up)
    ip addr replace "$vip" dev "$device"
    if command -v arping >/dev/null 2>&1; then
        # -U: unsolicited (gratuitous) ARP; no reply is expected. In the background:
        # arping lingers a second after sending, which need not delay the leader's start.
        (arping -q -U -c 1 -I "$device" "${vip%/*}" || echo "conclave-vip: gratuitous ARP failed" >&2) &
    else
        echo "conclave-vip: arping not installed; neighbours learn the move when their ARP entries expire" >&2
    fi
    ;;
down)
    ip addr del "$vip" dev "$device" 2>/dev/null || true
    ;;
*)
    usage
    ;;
esac
