#!/usr/bin/env bash
# Runs the perf_analyzer that `make perf-analyzer` set up in .venv-pa, with the library path it needs;
# every argument goes to perf_analyzer. Example, against a running `asyncinfer serve`:
#   scripts/perf_analyzer.sh -m simple -u 127.0.0.1:8001 -i grpc --concurrency-range 1:64:21
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BINARY="$ROOT/.venv-pa/bin/perf_analyzer"
if [ ! -x "$BINARY" ]; then
    echo "perf_analyzer is not installed: run \`make perf-analyzer\` in $ROOT" >&2
    exit 1
fi
LIB="$("$ROOT/.venv-pa/bin/python" -c 'import nvidia.cuda_runtime, os; print(os.path.join(nvidia.cuda_runtime.__path__[0], "lib"))')"
export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$BINARY" "$@"
