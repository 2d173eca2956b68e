"""Compiles protos/ into asyncinfer.pb when the package is built or installed.

Generated code is never committed: every build (wheel, sdist install, editable install) runs
grpcio-tools over protos/asyncinfer/pb/*.proto and writes *_pb2.py, *_pb2_grpc.py and typed
stubs next to the package sources, where both normal and editable installs pick them up.
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


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
