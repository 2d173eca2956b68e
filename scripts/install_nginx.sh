#!/usr/bin/env bash
# Installs Debian's nginx (for the load-balancer tests, example 07 and bench/scale_out.py) when
# it is missing. Only the binary is needed: tests start their own nginx with a config rendered
# from deploy/nginx/ into a temporary folder, never the system service.
#
# Idempotent: when an nginx with the gRPC proxy module is on PATH (or in /usr/sbin), it does
# nothing and returns in well under a second.
set -euo pipefail

nginx_binary() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }
}

has_grpc() {
    local binary
    binary="$(nginx_binary)" || return 1
    # Debian builds the grpc module in; `nginx -V` lists the configure flags on stderr.
    "$binary" -V 2>&1 | grep -q -- "--with-http_v2_module"
}

if has_grpc; then
    exit 0
fi
echo "install_nginx: installing Debian package nginx" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "install_nginx: nginx is missing and this is not root;" \
        "run: sudo apt-get update && sudo apt-get install -y nginx" >&2
    exit 1
fi
# The package must not start the system service on port 80 (tests run their own nginx): a
# policy-rc.d that denies every start, only for the length of the install, unless one exists.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod +x "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
if ! has_grpc; then
    echo "install_nginx: nginx was installed but lacks the HTTP/2 (gRPC) module: $(nginx_binary)" >&2
    exit 1
fi
echo "install_nginx: $(nginx_binary) ready" >&2
