#!/usr/bin/env bash
# Runs the whole suite; a run that collects no test fails instead of passing silently.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing (exit 5 is never a pass here)" >&2
    exit 1
fi
exit "$rc"
