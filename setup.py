"""Compiles protos/ into asyncinfer.pb, and schemas/ into asyncinfer.fb, when the package is
built or installed.

Generated code is never committed: every build (wheel, sdist install, editable install) runs
grpcio-tools over protos/asyncinfer/pb/*.proto and writes *_pb2.py, *_pb2_grpc.py and typed
stubs next to the package sources, where both normal and editable installs pick them up.

The inference protos (package ``inference``) are post-processed to register into a private
descriptor pool (asyncinfer.pb._pools.INFERENCE_POOL): tritonclient registers the same symbols
in protobuf's default pool, and one process must be able to import both without a
"duplicate symbol" error.

The FlatBuffers schemas (schemas/**/*.fbs) are compiled by flatc, FlatBuffers' compiler, which
is not a Python package: ``scripts/install_flatc.sh`` installs Debian's when it is missing, and
a build without it stops with a message saying so.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).parent.resolve()
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "src"


def compile_protos() -> None:
    from grpc_tools import protoc  # available through [build-system] requires

    include = pathlib.Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={OUT_ROOT}",
        f"--grpc_python_out={OUT_ROOT}",
        f"--pyi_out={OUT_ROOT}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {sources}")
    for generated in (OUT_ROOT / PRIVATE_POOL_PACKAGE).glob("*_pb2.py"):
        use_private_pool(generated)


PRIVATE_POOL_PACKAGE = "asyncinfer/pb/inference"
DEFAULT_POOL = "_descriptor_pool.Default()"


def use_private_pool(path: pathlib.Path) -> None:
    """Make a generated module register its file in INFERENCE_POOL instead of the default pool."""
    text = path.read_text()
    if DEFAULT_POOL not in text:
        raise SystemExit(f"{path}: protoc output changed shape; cannot find {DEFAULT_POOL}")
    text = text.replace(DEFAULT_POOL, "_pools.INFERENCE_POOL")
    text = text.replace(
        "from google.protobuf import symbol_database",
        "from asyncinfer.pb import _pools\nfrom google.protobuf import symbol_database",
        1,
    )
    path.write_text(text)


SCHEMA_ROOT = ROOT / "schemas"
FLATBUFFERS_PACKAGE = "asyncinfer/fb"
FLATC_MIN_MAJOR = 2  # Debian 12's 2.0.8 and later; their Python output runs on runtime 25.x


def compile_flatbuffers() -> None:
    """Generate asyncinfer.fb from schemas/ with flatc; ship the schemas beside the code."""
    flatc = find_flatc()
    schemas = sorted(SCHEMA_ROOT.rglob("*.fbs"))
    if not schemas:
        raise SystemExit(f"no FlatBuffers schemas under {SCHEMA_ROOT}: the source tree is incomplete")
    target = OUT_ROOT / FLATBUFFERS_PACKAGE
    # flatc writes an (empty) __init__.py into every package folder on the way, so it runs in a
    # scratch folder and only the generated modules are copied next to our own __init__.py.
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [flatc, "--python", "-o", scratch, *map(str, schemas)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"flatc failed on {schemas}:\n{done.stdout}{done.stderr}")
        for generated in (pathlib.Path(scratch) / FLATBUFFERS_PACKAGE).glob("*.py"):
            if generated.name != "__init__.py":
                shutil.copyfile(generated, target / generated.name)
    for schema in schemas:
        shutil.copyfile(schema, target / schema.name)


def find_flatc() -> str:
    """The flatc to run ($FLATC or the one on PATH), or a build error saying how to get one."""
    flatc = os.environ.get("FLATC") or shutil.which("flatc")
    if flatc is None:
        raise SystemExit(
            "flatc (the FlatBuffers compiler) is not installed: building asyncinfer generates "
            "asyncinfer.fb from schemas/ with it. Install it with `bash scripts/install_flatc.sh` "
            "(Debian's flatbuffers-compiler), or set FLATC to a flatc binary."
        )
    version = subprocess.run([flatc, "--version"], capture_output=True, text=True, check=False)
    words = version.stdout.split()  # "flatc version 2.0.8"
    major = words[-1].split(".")[0] if words else ""
    if version.returncode != 0 or not major.isdigit() or int(major) < FLATC_MIN_MAJOR:
        raise SystemExit(
            f"{flatc} reports {version.stdout.strip()!r}; asyncinfer needs flatc "
            f"{FLATC_MIN_MAJOR}.0 or later"
        )
    return flatc


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        compile_flatbuffers()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
