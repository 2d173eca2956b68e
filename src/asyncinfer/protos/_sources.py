"""The .proto files one load compiles: a file, the imports it reaches, and a key over them all.

protoc finds an import by trying each include root in turn; :func:`find_sources` does the same
so that the cache key covers every file whose contents shape the generated code. Imports that
no root holds are either provided (protobuf's well-known types, which protobuf ships as
modules, and asyncinfer's own ``asyncinfer/pb/tensor.proto``) or missing, which protoc then
reports with the importing file and line.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

from ..errors import ConfigError

__all__ = [
    "LIBRARY_PROTOS",
    "ProtoFile",
    "ProtoSources",
    "find_sources",
    "library_descriptor_set",
    "well_known_root",
]

#: asyncinfer's protos that users' protos may import, and the modules that already hold them.
LIBRARY_PROTOS = {"asyncinfer/pb/tensor.proto": "asyncinfer.pb.tensor_pb2"}

# Comments go, strings stay (an import path is a string; "//" may appear inside one).
_COMMENT_OR_STRING = re.compile(
    r"//[^\n]*|/\*.*?\*/|(\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*')", re.DOTALL
)
_IMPORT = re.compile(r"\bimport\s+(?:(?:public|weak)\s+)?\"([^\"]+)\"\s*;")


@dataclass(frozen=True)
class ProtoFile:
    """One user .proto: the name protoc knows it by, where it lies, and a hash of its bytes."""

    name: str
    path: Path
    digest: str

    @property
    def module(self) -> str:
        """The Python module protoc generates for it: ``myco/ping.proto`` -> ``myco.ping_pb2``."""
        return self.name.removesuffix(".proto").replace("-", "_").replace("/", ".") + "_pb2"

    @property
    def module_file(self) -> str:
        """That module's file, relative to the output folder."""
        return self.module.replace(".", "/") + ".py"


@dataclass(frozen=True)
class ProtoSources:
    """A file and the user files it imports, dependencies first and the file itself last."""

    files: tuple[ProtoFile, ...]
    roots: tuple[Path, ...]
    provided: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def main(self) -> ProtoFile:
        return self.files[-1]

    def key(self) -> str:
        """The cache key: every input of the generated code, toolchain versions included."""
        digest = hashlib.sha256(_toolchain().encode())
        for file in self.files:
            digest.update(f"\nfile {file.name} {file.digest}".encode())
        for name in (*self.provided, *self.missing):
            digest.update(f"\nimport {name}".encode())
        digest.update(hashlib.sha256(library_descriptor_set()).digest())
        return digest.hexdigest()[:32]


def find_sources(
    path: str | os.PathLike[str], include: Sequence[str | os.PathLike[str]] = ()
) -> ProtoSources:
    """The sources of ``path``: its name relative to the first ``include`` root holding it
    (else to its own folder, then also searched first), and every user file it imports."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"no .proto file at {file}")
    roots = [Path(root).resolve() for root in include]
    if not any(file.is_relative_to(root) for root in roots):
        roots.insert(0, file.parent)
    main_root = next(root for root in roots if file.is_relative_to(root))
    walk = _Walk(tuple(roots))
    walk.visit(file.relative_to(main_root).as_posix(), file)
    return ProtoSources(tuple(walk.files), tuple(roots), tuple(walk.provided), tuple(walk.missing))


class _Walk:
    """A depth-first walk over imports that lists user files in dependency order."""

    def __init__(self, roots: tuple[Path, ...]) -> None:
        self.roots = roots
        self.files: list[ProtoFile] = []
        self.provided: list[str] = []
        self.missing: list[str] = []
        self._seen: set[str] = set()

    def visit(self, name: str, path: Path) -> None:
        self._seen.add(name)
        data = path.read_bytes()
        for imported in imports_of(data.decode("utf-8", errors="replace")):
            if imported in self._seen:
                continue  # visited, or a cycle (protoc reports cycles)
            found = next((r / imported for r in self.roots if (r / imported).is_file()), None)
            if found is not None:
                self.visit(imported, found)
            elif imported in LIBRARY_PROTOS or (well_known_root() / imported).is_file():
                self._seen.add(imported)
                self.provided.append(imported)
            else:
                self._seen.add(imported)
                self.missing.append(imported)
        self.files.append(ProtoFile(name, path, hashlib.sha256(data).hexdigest()))


def imports_of(text: str) -> list[str]:
    """The paths a .proto file imports, in order."""
    code = _COMMENT_OR_STRING.sub(lambda m: m.group(1) or " ", text)
    return _IMPORT.findall(code)


def well_known_root() -> Path:
    """The folder of protobuf's well-known .proto files that grpcio-tools ships."""
    spec = importlib.util.find_spec("grpc_tools")  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise ConfigError(
            "compiling .proto files at run time needs grpcio-tools: pip install grpcio-tools"
        )
    return Path(spec.origin).parent / "_proto"


@functools.cache
def library_descriptor_set() -> bytes:
    """asyncinfer's importable protos as a FileDescriptorSet, for protoc's --descriptor_set_in."""
    files = descriptor_pb2.FileDescriptorSet()
    for module_name in LIBRARY_PROTOS.values():
        module = importlib.import_module(module_name)
        module.DESCRIPTOR.CopyToProto(files.file.add())
    return files.SerializeToString()


@functools.cache
def _toolchain() -> str:
    """The versions that shape generated code (read from the modules: package metadata is slow)."""
    well_known_root()  # a clear error when grpcio-tools is missing
    from google.protobuf import __version__ as protobuf
    from grpc_tools.grpc_version import VERSION as grpcio_tools  # not grpc_tools.protoc's hooks

    return f"asyncinfer.protos/1 grpcio-tools={grpcio_tools} protobuf={protobuf}"
