#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, if any is missing:
#   protobuf-compiler  protoc, for the gRPC code generation (ours and etcd-client's)
#   etcd-client        etcdctl 3.4, the real etcd client the tests drive
#   haproxy, nginx     the real load balancers the gateway's tests put in front of it
#   libnginx-mod-stream  NGINX's TCP proxy, for the TLS passthrough configuration
#   openssl            generating certificates (make cluster TLS=1)
#   bsdutils           script(1), a terminal for conclavectl's password prompt test
#   iproute2           ip(8): network namespaces for the elect run virtual-IP test
#   iputils-arping     arping, the gratuitous ARP of deploy/vip/conclave-vip.sh
set -euo pipefail

need=()
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v arping >/dev/null 2>&1 || [ -x /usr/sbin/arping ] || need+=(iputils-arping)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "missing packages: ${need[*]} (run as root or install them)" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
