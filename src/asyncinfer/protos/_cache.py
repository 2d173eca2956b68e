"""The on-disk cache of compiled protos: one folder per key, written whole or not at all, bounded.

A miss compiles into a private temporary folder inside the cache and renames it into place;
the rename is atomic, so a process never sees a half-written entry, and when two processes
compile the same key at once, one rename wins and the other process uses the winner's folder.
Entries are touched when used; past ``max_entries`` the least recently used ones are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ._protoc import run_protoc
from ._sources import ProtoSources

__all__ = ["CACHE_ENV", "CacheStatistics", "ProtoCache", "default_cache_dir"]

#: The environment variable that moves the default cache.
CACHE_ENV = "ASYNCINFER_PROTO_CACHE"
_RUNTIME_OUTPUTS = ("--python_out", "--grpc_python_out")
_STALE_TEMP_SECONDS = 3600.0


def default_cache_dir() -> Path:
    """``$ASYNCINFER_PROTO_CACHE``, else ``$XDG_CACHE_HOME/asyncinfer/protos``, else
    ``~/.cache/asyncinfer/protos``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asyncinfer" / "protos"


@dataclass(frozen=True)
class CacheStatistics:
    hits: int
    compiles: int
    evictions: int


class ProtoCache:
    """Compiled protos on disk, at most ``max_entries`` folders under ``root``."""

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, max_entries: int = 64
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, not {max_entries}")
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._hits = self._compiles = self._evictions = 0

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(self._hits, self._compiles, self._evictions)

    def entry(self, sources: ProtoSources) -> Path:
        """The folder holding the generated modules of ``sources``, compiled on a miss."""
        folder = self.root / sources.key()
        if folder.is_dir():
            with contextlib.suppress(OSError):  # evicted meanwhile: the import will say so
                os.utime(folder)
            with self._lock:
                self._hits += 1
            return folder
        staging = self._staging()
        try:
            run_protoc(sources, _RUNTIME_OUTPUTS, staging)
            try:
                staging.rename(folder)
            except OSError:
                if not folder.is_dir():
                    raise  # not a lost race: a real failure to write the cache
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with self._lock:
            self._compiles += 1
        self._evict(keep=folder)
        return folder

    def _staging(self) -> Path:
        """A private folder inside the cache to compile into (a read-only cache cannot)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        except OSError as exc:
            raise ConfigError(
                f"cannot write into the proto cache {self.root}: {exc.strerror}; set {CACHE_ENV} "
                "to a writable folder"
            ) from None

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used entries past the bound, and stale staging folders."""
        entries: list[tuple[float, Path]] = []
        now = time.time()
        for child in self.root.iterdir():
            with contextlib.suppress(OSError):  # another process may be removing it
                mtime = child.stat().st_mtime
                if child.name.startswith(".tmp-"):
                    if now - mtime > _STALE_TEMP_SECONDS:
                        shutil.rmtree(child, ignore_errors=True)
                elif child.is_dir() and child != keep:
                    entries.append((mtime, child))
        entries.sort()
        for _, child in entries[: max(0, len(entries) + 1 - self.max_entries)]:
            shutil.rmtree(child, ignore_errors=True)
            with self._lock:
                self._evictions += 1
