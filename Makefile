# Every target creates .venv on first use, so `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# perf_analyzer lives in its own venv (scripts/install_perf_analyzer.sh says why).
PA_STAMP := .venv-pa/.installed-stamp
# Debian's nginx, for the load-balancer tests, example 07 and bench/scale_out.py.
NGINX_STAMP := build/.nginx-stamp
PROTOS := $(shell find protos -name '*.proto')
SCHEMAS := $(shell find schemas -name '*.fbs')

.PHONY: install perf-analyzer nginx models demo test lint typecheck docs check bench clean

$(STAMP): pyproject.toml setup.py $(PROTOS) $(SCHEMAS) scripts/install_flatc.sh
	bash scripts/install_flatc.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
	touch $@

$(PA_STAMP): scripts/install_perf_analyzer.sh
	bash scripts/install_perf_analyzer.sh
	touch $@

$(NGINX_STAMP): scripts/install_nginx.sh
	bash scripts/install_nginx.sh
	mkdir -p build && touch $@

install: $(STAMP) models

# Only the targets that drive perf_analyzer need it (its install may call apt-get as root);
# install, lint and typecheck do not.
perf-analyzer: $(PA_STAMP)

nginx: $(NGINX_STAMP)

# The example repositories' ONNX models (random weights; built once, not committed).
models: $(STAMP)
	$(PY) examples/build_models.py

demo: $(STAMP) models
	$(PY) examples/demo.py

# CI runs this (.ci/run): lint, types and the docs build gate the tests.
test: $(STAMP) models $(PA_STAMP) $(NGINX_STAMP) lint typecheck docs
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench deploy
	$(VENV)/bin/ruff format --check src tests examples bench deploy

typecheck: $(STAMP)
	bash scripts/typecheck.sh

# The site, strict (a broken link, anchor or API reference fails); tests/integration/test_docs.py
# builds it too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

check: test

# Every benchmark in bench/ (private modules start with _), one after the other: never in
# parallel, they share the machine's cores with the servers they measure.
bench: $(STAMP) models $(PA_STAMP) $(NGINX_STAMP)
	set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script; done
	@echo "bench results and plots: build/bench/*.json, build/bench/*.png"; ls build/bench/*.png

clean:
	rm -rf $(VENV) .venv-pa build dist src/*.egg-info src/asyncinfer/pb/*_pb2*.py src/asyncinfer/pb/*_pb2*.pyi src/asyncinfer/pb/inference/*_pb2*.py src/asyncinfer/pb/inference/*_pb2*.pyi
	rm -f src/asyncinfer/fb/[A-Z]*.py src/asyncinfer/fb/*.fbs
