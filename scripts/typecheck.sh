#!/usr/bin/env bash
# mypy --strict over everything: src, tests and bench in one run (pyproject's [tool.mypy]),
# then each example folder in a run of its own, since examples share module names (client.py,
# model.py). The protos of examples and tests are loaded at run time, so typed stubs of them are
# written first (python -m asyncinfer.protos stubs) into build/typings, which mypy_path points at.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mapfile -t protos < <(find examples tests bench -name '*.proto' | sort)
"$PY" -m asyncinfer.protos stubs --out build/typings "${protos[@]}" > /dev/null
# Triton python models import triton_python_backend_utils, which is asyncinfer's pb_utils.
echo "from asyncinfer.inference.backends.triton_python.pb_utils import *" \
    > build/typings/triton_python_backend_utils.pyi
echo "mypy --strict src tests bench"
"$PY" -m mypy
check() {  # one folder's .py files, quietly unless something is wrong
    "$PY" -m mypy --no-error-summary "$@"
}
folders=0
for dir in examples/*/; do
    files=("$dir"*.py)
    [ -e "${files[0]}" ] || continue
    check "${files[@]}"
    folders=$((folders + 1))
done
check examples/*.py
# Repository models read required inputs with Request.input(), typed `Tensor | None` because an
# optional input may be absent; the server has checked required ones against config.pbtxt
# before execute runs, so only that check is left out for them.
for model in examples/model_repository/*/*/model.py; do
    check --disable-error-code union-attr "$model"
    folders=$((folders + 1))
done
echo "mypy --strict examples: $folders folders and the top-level scripts, no issues"
