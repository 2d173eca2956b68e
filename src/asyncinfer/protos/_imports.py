"""Imports the modules of a cache entry under the names protoc gave them, once per process.

Generated code imports its dependencies by those names (``import common_pb2``, ``from myco
import common_pb2``), so each module is registered in ``sys.modules`` in dependency order. Nothing
is added to ``sys.path``: a parent package that does not exist (``myco``) is created empty, and
a real one (the user's own package) only gains the submodule.

Protobuf's descriptor pool is process-wide, and so are these names: a second file with the
same name and the same contents reuses the first module; one with other contents, or one that
defines a symbol already defined elsewhere, is a ConfigError that says which files clash.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from pathlib import Path

from ..errors import ConfigError
from ._sources import ProtoFile, ProtoSources

__all__ = ["EntryVanished", "import_entry", "import_grpc"]


class EntryVanished(ConfigError):
    """A cache entry was removed (by another process's eviction) before its import finished."""


_LOCK = threading.RLock()
#: Proto name -> the file it was first loaded from in this process (for error messages).
_ORIGINS: dict[str, Path] = {}


def import_entry(entry: Path, sources: ProtoSources) -> types.ModuleType:
    """The main file's ``*_pb2`` module, its user dependencies imported first."""
    with _LOCK:
        for file in sources.files:
            _import(file.module, entry / file.module_file, file)
        return sys.modules[sources.main.module]


def import_grpc(entry: Path, sources: ProtoSources) -> types.ModuleType:
    """The main file's ``*_pb2_grpc`` module (stubs, servicers), after its messages."""
    import_entry(entry, sources)
    main = sources.main
    with _LOCK:
        return _import(
            main.module + "_grpc", entry / main.module_file.replace(".py", "_grpc.py"), main
        )


def _import(name: str, location: Path, file: ProtoFile) -> types.ModuleType:
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(location):
        return existing
    module = _execute(name, location, file)
    if existing is not None:
        if _same_descriptor(existing, module):
            return existing  # the same file, loaded from another entry or another copy
        raise ConfigError(
            f"{file.path}: its module name {name!r} is already taken in this process by "
            f"{getattr(existing, '__file__', existing)!r}; rename the .proto file"
        )
    _register(name, module)
    _ORIGINS.setdefault(file.name, file.path)
    return module


def _execute(name: str, location: Path, file: ProtoFile) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, location)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{file.path}: no generated module at {location}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise EntryVanished(
            f"{file.path}: its compiled module {location} vanished (the cache was cleaned "
            "meanwhile); load it again"
        ) from None
    except TypeError as exc:  # protobuf: "Couldn't build proto file into descriptor pool: ..."
        raise ConfigError(_clash(file, exc)) from None
    return module


def _clash(file: ProtoFile, exc: TypeError) -> str:
    origin = _ORIGINS.get(file.name)
    if "duplicate file name" in str(exc) and origin == file.path:
        return (
            f"{file.path} changed since this process loaded it; protobuf cannot replace "
            "loaded descriptors, so restart the process to use the new version"
        )
    if "duplicate file name" in str(exc) and origin is not None:
        return (
            f"{file.path}: a different file named {file.name!r} is already loaded in this "
            f"process (from {origin}); protobuf's descriptors are process-wide, so give each "
            "file its own name or package folder (load(path, include=[root]))"
        )
    return (
        f"{file.path}: cannot load {file.name!r} into this process: {exc}; each file name and "
        "each message, enum and service full name may be defined once per process"
    )


def _same_descriptor(first: types.ModuleType, second: types.ModuleType) -> bool:
    a, b = getattr(first, "DESCRIPTOR", None), getattr(second, "DESCRIPTOR", None)
    if a is None or b is None:  # a *_pb2_grpc module: same messages, same file name
        return getattr(first, "__name__", None) == getattr(second, "__name__", None)
    return bool(a.name == b.name and a.serialized_pb == b.serialized_pb)


def _register(name: str, module: types.ModuleType) -> None:
    parent_name, _, leaf = name.rpartition(".")
    sys.modules[name] = module
    if parent_name:
        setattr(_parent(parent_name), leaf, module)


def _parent(name: str) -> types.ModuleType:
    """The package ``name``: imported if it exists, else an empty one made for generated code."""
    if name in sys.modules:
        return sys.modules[name]
    above = name.rpartition(".")[0]
    if above:
        _parent(above)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
    package = types.ModuleType(name, "Generated protobuf modules (asyncinfer.protos)")
    package.__path__ = []
    _register(name, package)
    return package
