"""Users' own .proto files: compiled at run time by grpcio-tools into a cache, imported as modules.

::

    ping_pb2 = asyncinfer.protos.load("ping.proto")        # messages and DESCRIPTOR
    method = asyncinfer.rpc_method(ping_pb2, "Ping", "Ping")
    ping_pb2_grpc = asyncinfer.protos.load_grpc("ping.proto")  # grpc stubs, if you want them

The first load of a file runs protoc once and keeps the generated modules in a cache folder
keyed by a hash of the file, every file it imports and the toolchain's versions; later loads,
in this process or any other (worker processes, the next run), import from that folder.
Imports between your files, protobuf's well-known types and asyncinfer's
``asyncinfer/pb/tensor.proto`` all resolve. protoc's errors raise :class:`ConfigError` naming
the file and line.

For ``mypy``, :func:`write_stubs` (``python -m asyncinfer.protos stubs --out typings FILE...``)
writes typed ``*_pb2.pyi`` stubs with mypy-protobuf; code imports the module under
``TYPE_CHECKING`` and loads it at run time::

    if TYPE_CHECKING:
        import ping_pb2
    else:
        ping_pb2 = asyncinfer.protos.load(Path(__file__).with_name("ping.proto"))
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

from ..errors import ConfigError
from ._cache import CACHE_ENV, CacheStatistics, ProtoCache, default_cache_dir
from ._imports import EntryVanished, import_entry, import_grpc
from ._protoc import run_protoc
from ._sources import ProtoSources, find_sources

__all__ = [
    "CACHE_ENV",
    "CacheStatistics",
    "ProtoCache",
    "default_cache",
    "default_cache_dir",
    "load",
    "load_grpc",
    "write_stubs",
]

PathLike = str | os.PathLike[str]

_DEFAULT: ProtoCache | None = None
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> ProtoCache:
    """The process's cache, at :func:`default_cache_dir` when first used."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ProtoCache()
        return _DEFAULT


def load(
    path: PathLike, *, include: Sequence[PathLike] = (), cache: ProtoCache | None = None
) -> ModuleType:
    """The ``*_pb2`` module of the .proto file at ``path``: its messages as attributes and its
    ``DESCRIPTOR`` (for :func:`asyncinfer.rpc_method`).

    The file is named relative to the first ``include`` folder that holds it (so
    ``include=["protos"]`` makes ``protos/myco/ping.proto`` the module ``myco.ping_pb2``),
    else relative to its own folder; imports are looked up in the same folders, in order.
    """
    return _loaded(import_entry, path, include, cache)


def load_grpc(
    path: PathLike, *, include: Sequence[PathLike] = (), cache: ProtoCache | None = None
) -> ModuleType:
    """The ``*_pb2_grpc`` module of the .proto file at ``path`` (grpc's generated stubs and
    servicers), its ``*_pb2`` module loaded first. Contexts do not need it."""
    return _loaded(import_grpc, path, include, cache)


def _loaded(
    importer: Callable[[Path, ProtoSources], ModuleType],
    path: PathLike,
    include: Sequence[PathLike],
    cache: ProtoCache | None,
) -> ModuleType:
    sources = find_sources(path, include)
    cache = cache or default_cache()
    try:
        return importer(cache.entry(sources), sources)
    except EntryVanished:  # another process evicted the entry between lookup and import
        return importer(cache.entry(sources), sources)


def write_stubs(
    paths: Iterable[PathLike], out_dir: PathLike, *, include: Sequence[PathLike] = ()
) -> list[Path]:
    """Write typed stubs (``*_pb2.pyi``, ``*_pb2_grpc.pyi``) of ``paths`` and of the files they
    import into ``out_dir``, with mypy-protobuf; point mypy's ``mypy_path`` at ``out_dir``."""
    plugins = [f"protoc-gen-{name}={_plugin(name)}" for name in ("mypy", "mypy_grpc")]
    out = Path(out_dir)
    written: dict[Path, bytes] = {}
    for path in paths:
        sources = find_sources(path, include)
        for relative, text in _stubs(sources, plugins).items():
            target = out / relative
            if written.get(target, text) != text:
                raise ConfigError(
                    f"two different files generate the stub {relative} (the last was "
                    f"{sources.main.path}); give each .proto file its own name"
                )
            written[target] = text
    for target, text in written.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != text:
            target.write_bytes(text)
    return sorted(written)


def _stubs(sources: ProtoSources, plugins: Sequence[str]) -> dict[Path, bytes]:
    with tempfile.TemporaryDirectory(prefix="asyncinfer-stubs-") as scratch:
        run_protoc(sources, ("--mypy_out", "--mypy_grpc_out"), Path(scratch), plugins=plugins)
        return {p.relative_to(scratch): p.read_bytes() for p in Path(scratch).rglob("*.pyi")}


def _plugin(name: str) -> str:
    executable = f"protoc-gen-{name}"
    beside = Path(sys.executable).with_name(executable)
    found = str(beside) if beside.is_file() else shutil.which(executable)
    if found is None:
        raise ConfigError(
            f"writing typed stubs needs mypy-protobuf ({executable} was not found): "
            "pip install mypy-protobuf"
        )
    return found
