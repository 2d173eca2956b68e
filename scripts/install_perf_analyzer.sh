#!/usr/bin/env bash
# Sets up perf_analyzer in its own virtual environment, .venv-pa at the repository root.
#
# Why its own environment: the only perf_analyzer binary that starts on Debian 12 (glibc 2.36)
# is the one bundled in the tritonclient 2.51.0 wheel (2.52+ need glibc 2.38; the PyPI package
# "perf-analyzer" is an empty placeholder). Installed with --no-deps so it cannot disturb the
# tritonclient pinned in .venv. The binary links libcudart (from nvidia-cuda-runtime-cu12, found
# through LD_LIBRARY_PATH; no GPU needed) and libb64 (Debian's libb64-0d).
#
# Idempotent: when the binary already starts, it does nothing and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv-pa"
TRITONCLIENT_VERSION="2.51.0"
BINARY="$VENV/bin/perf_analyzer"

cuda_lib_dir() {
    "$VENV/bin/python" -c 'import nvidia.cuda_runtime, os; print(os.path.join(nvidia.cuda_runtime.__path__[0], "lib"))'
}

binary_starts() {
    [ -x "$BINARY" ] || return 1
    local lib
    lib="$(cuda_lib_dir 2>/dev/null)" || return 1
    LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$BINARY" --version >/dev/null 2>&1
}

# shellcheck source=scripts/_apt.sh
. scripts/_apt.sh

ensure_libb64() {
    apt_install_missing install_perf_analyzer libb64-0d
}

ensure_venv() {
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --no-deps "tritonclient==$TRITONCLIENT_VERSION"
    "$VENV/bin/python" -m pip install --quiet nvidia-cuda-runtime-cu12
}

if binary_starts; then
    exit 0
fi
ensure_libb64
ensure_venv
if ! binary_starts; then
    echo "install_perf_analyzer: $BINARY was installed but does not start; run it by hand:" >&2
    echo "  LD_LIBRARY_PATH=$(cuda_lib_dir) $BINARY --version" >&2
    exit 1
fi
echo "install_perf_analyzer: $BINARY ready" >&2
