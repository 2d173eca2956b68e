#!/usr/bin/env bash
# The container's build stage, and the test suite's wheel build: makes asyncinfer's wheel, with
# the protobuf modules compiled inside it from protos/ (setup.py runs grpcio-tools during the
# build, in the isolated build environment pyproject.toml's [build-system] describes).
#
#   deploy/container/build-wheel.sh OUT_DIR        # run from anywhere; builds this checkout
#
# Prints the wheel's path as its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$(mkdir -p "${1:?usage: build-wheel.sh OUT_DIR}" && cd "$1" && pwd)"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m build --version >/dev/null 2>&1 || {
    echo "build-wheel: the 'build' package is missing: $PYTHON -m pip install build" >&2
    exit 1
}
# A copy of the sources: the build writes generated modules and egg-info next to them, and the
# checkout it runs from (perhaps a developer's editable install) must not change under it.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar -C "$ROOT" -cf - --exclude='__pycache__' --exclude='*.egg-info' \
    --exclude='src/asyncinfer/pb/*_pb2*' --exclude='src/asyncinfer/pb/inference/*_pb2*' \
    pyproject.toml setup.py README.md protos schemas src |
    tar -C "$WORK" -xf -
"$PYTHON" -m build --wheel --outdir "$OUT" "$WORK" >"$WORK/build.log" 2>&1 || {
    tail -40 "$WORK/build.log" >&2
    exit 1
}
ls -t "$OUT"/asyncinfer-*.whl | head -1
