#!/usr/bin/env bash
# The container's runtime install, and what the test suite runs into a fresh prefix: a virtual
# environment at PREFIX with asyncinfer's wheel and its extras, nothing else.
#
#   deploy/container/install.sh --wheel dist/asyncinfer-0.1.0-py3-none-any.whl \
#       --prefix /opt/asyncinfer [--extras onnx,gpu]
#
# Afterwards PREFIX/bin/asyncinfer is the console script (`asyncinfer serve ...`).
set -euo pipefail

usage() {
    echo "usage: install.sh --wheel FILE.whl --prefix DIR [--extras LIST]" >&2
    exit 2
}
WHEEL="" PREFIX="" EXTRAS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --wheel) WHEEL="${2:-}"; shift 2 ;;
    --prefix) PREFIX="${2:-}"; shift 2 ;;
    --extras) EXTRAS="${2:-}"; shift 2 ;;
    *) usage ;;
    esac
done
[ -n "$WHEEL" ] && [ -n "$PREFIX" ] || usage
[ -f "$WHEEL" ] || { echo "install: no wheel at $WHEEL" >&2; exit 1; }
if [ -e "$PREFIX/bin/python" ]; then
    echo "install: $PREFIX already holds an environment; give a fresh prefix" >&2
    exit 1
fi
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
SPEC="$WHEEL"
[ -z "$EXTRAS" ] || SPEC="$WHEEL[$EXTRAS]"
"$PREFIX/bin/python" -m pip install --quiet --no-cache-dir "$SPEC"
# The console script starts and reports the wheel's version: the install is usable.
"$PREFIX/bin/asyncinfer" --version
