"""Compiles protos/ into asyncinfer.pb when the package is built or installed.

Generated code is never committed: every build (wheel, sdist install, editable install) runs
grpcio-tools over protos/asyncinfer/pb/*.proto and writes *_pb2.py, *_pb2_grpc.py and typed
stubs next to the package sources, where both normal and editable installs pick them up.

The inference protos (package ``inference``) are post-processed to register into a private
descriptor pool (asyncinfer.pb._pools.INFERENCE_POOL): tritonclient registers the same symbols
in protobuf's default pool, and one process must be able to import both without a
"duplicate symbol" error.
"""

from __future__ import annotations

import pathlib

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


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
