"""The model repository: which models exist, which versions are ready, load/unload/poll.

Triton's layout: ``<root>/<model>/config.pbtxt`` and ``<root>/<model>/<version>/...``. Control
modes: ``none`` loads every model at start and refuses load/unload; ``explicit`` loads only the
models named at start and then what clients ask for; ``poll`` loads every model and rescans
the repository periodically, loading new or changed models and unloading removed ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from typing import Literal

from ...errors import (
    ConfigError,
    Internal,
    InvalidArgument,
    NotFound,
    RpcError,
    Unavailable,
    echo,
)
from ..backends.base import backend_healthy
from ..model import LoadedModel
from .auto_complete import complete_config
from .config_bounds import ConfigBounds
from .ensemble import ENSEMBLE, composing_models
from .loader import load_model_dir, read_config

__all__ = ["CONTROL_MODES", "ControlMode", "ModelRecord", "ModelRepository", "parse_version"]

log = logging.getLogger("asyncinfer.inference")
ControlMode = Literal["none", "explicit", "poll"]
CONTROL_MODES = ("none", "explicit", "poll")
READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
MAX_NAME_BYTES = 255  # a directory entry's limit on Linux file systems


@dataclasses.dataclass(eq=False)
class ModelRecord:
    """What the repository knows of one model name: state, reason, ready versions."""

    name: str
    state: str = UNAVAILABLE
    reason: str = ""
    versions: dict[int, LoadedModel] = dataclasses.field(default_factory=dict)
    fingerprint: tuple[tuple[str, int], ...] = ()
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    # The scratch folder the ready versions were loaded from (file overrides), removed with them.
    override_dir: pathlib.Path | None = None
    #: The highest ready version (what a request naming no version gets); None when none is.
    latest: LoadedModel | None = None

    def set_versions(self, versions: dict[int, LoadedModel]) -> dict[int, LoadedModel]:
        """Replace the ready versions (and ``latest`` with them); the old ones are returned.

        The only way versions change: ``latest`` is looked up on every request, so it is
        found here, once per load or unload, not per request.
        """
        old, self.versions = self.versions, versions
        self.latest = versions[max(versions)] if versions else None
        return old


class ModelRepository:
    """Models of one repository directory; every change goes through load() or unload()."""

    def __init__(
        self,
        root: str | pathlib.Path,
        *,
        control_mode: ControlMode = "none",
        load_models: Iterable[str] = (),
        poll_seconds: float = 15.0,
        bounds: ConfigBounds | None = None,
        auto_complete: bool = True,
    ) -> None:
        if control_mode not in CONTROL_MODES:
            raise ConfigError(
                f"model control mode must be one of {CONTROL_MODES}, not {control_mode!r}"
            )
        if poll_seconds <= 0:
            raise ConfigError(f"poll_seconds must be > 0, not {poll_seconds}")
        self.root = pathlib.Path(root).resolve()
        self.control_mode = control_mode
        self.load_models = tuple(load_models)
        self.poll_seconds = poll_seconds
        #: Caps on what a model's config may ask for (instances, queues, priorities ...).
        self.bounds = bounds or ConfigBounds()
        #: Complete configs from the model files (auto_complete.py); False:
        #: --disable-auto-complete-config.
        self.auto_complete = auto_complete
        self._records: dict[str, ModelRecord] = {}
        #: Ensembles being loaded now: an ensemble reached again while loading is a cycle.
        self._loading_ensembles: list[str] = []
        self._scratch: pathlib.Path | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Check the repository and load the start-up models (failures are logged, not fatal)."""
        if not self.root.is_dir():
            raise ConfigError(f"model repository {self.root} is not a directory")
        if self.control_mode == "explicit" and "*" not in self.load_models:
            names = list(self.load_models)
        else:
            names = self.directory_models()
        for name in names:
            if self.is_ready(name):
                continue  # loaded already, as a step of an ensemble loaded before it
            try:
                await self.load(name, _startup=True)
            except RpcError as exc:
                log.error("model '%s' did not load: %s", name, exc.message)

    async def stop(self) -> None:
        for record in list(self._records.values()):
            # Under the lock: a load in progress finishes (or fails) before its record unloads.
            async with record.lock:
                await self._unload(record, reason="server stopped")
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ------------------------------------------------------------------ queries

    def directory_models(self) -> list[str]:
        """Model names present in the repository directory, sorted."""
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def index(self) -> list[tuple[str, str, str, str]]:
        """(name, version, state, reason) for every model in the directory or with versions.

        As Triton's RepositoryIndex: the repository's model folders, plus models loaded from
        file overrides only; a name that never loaded and has no folder is not listed.
        """
        loaded = {name for name, record in self._records.items() if record.versions}
        rows: list[tuple[str, str, str, str]] = []
        for name in sorted({*self.directory_models(), *loaded}):
            record = self._records.get(name)
            if record is None:
                rows.append((name, "", "", ""))
            elif record.versions:
                rows += [(name, str(v), record.state, record.reason) for v in record.versions]
            else:
                rows.append((name, "", record.state, record.reason))
        return rows

    def ready_models(self) -> dict[str, ModelRecord]:
        # list(): the metrics thread calls this while a load may add a record on the loop.
        records = list(self._records.items())
        return {n: r for n, r in records if r.state == READY and r.versions}

    def get(self, name: str, version: str = "") -> LoadedModel:
        """The ready version a request names; errors carry Triton's texts."""
        number = parse_version(version) if version else None  # '': the latest (usual)
        record = self._records.get(name)
        if record is None:
            raise NotFound(f"Request for unknown model: '{name}' is not found")
        latest = record.latest  # None exactly when no version is ready
        if latest is None:
            raise Unavailable(f"Request for unknown model: '{name}' has no available versions")
        if number is None:
            return latest
        model = record.versions.get(number)
        if model is None:
            raise NotFound(f"Request for unknown model: '{name}' version {number} is not found")
        return model

    def versions(self, name: str) -> list[LoadedModel]:
        """Every ready version of ``name``, ascending (empty when none is ready)."""
        record = self._records.get(name)
        return [record.versions[v] for v in sorted(record.versions)] if record else []

    def is_ready(self, name: str, version: str = "") -> bool:
        """Whether the named version is loaded and able to run a request (ModelReady): not
        while every instance of it is broken. A malformed version is INVALID_ARGUMENT."""
        parse_version(version)  # outside the try: a bad version string is an error, as in Triton
        try:
            model = self.get(name, version)
        except RpcError:
            return False
        return backend_healthy(model.backend)

    def all_ready(self) -> bool:
        """Whether every model asked to load is ready, each of its versions able to run
        (strict readiness): a failed load or a model whose instances are all broken is not;
        a model unloaded on request is no longer asked for."""
        for record in list(self._records.values()):
            if record.state == READY:
                if not all(backend_healthy(m.backend) for m in record.versions.values()):
                    return False
            elif record.reason != "unloaded":
                return False  # loading, or its load failed
        return True

    def statistics(self) -> dict[str, object]:
        return {
            "models": len(self._records),
            "ready": sum(1 for r in self._records.values() if r.state == READY),
        }

    # ------------------------------------------------------------------ control

    def check_control(self) -> None:
        """Load and unload requests are for explicit mode only, as in Triton (its text)."""
        if self.control_mode != "explicit":
            raise Unavailable("explicit model load / unload is not allowed if polling is enabled")

    async def load(
        self,
        name: str,
        *,
        config_override: str | None = None,
        files: Mapping[str, bytes] | None = None,
        _startup: bool = False,
    ) -> None:
        """Load (or reload) ``name``; on failure the old versions keep serving.

        The name is checked before anything is created, and a record exists only for a model
        folder of the repository or a model given by file overrides: a load of an unknown name
        leaves no trace, so client-chosen names cannot grow the repository's state.
        """
        check_model_name(name)
        model_dir = self._model_dir(name, config_override, files or {})
        override_dir = model_dir if files else None
        try:
            record = await self._locked_record(name)
            try:
                versions = await self._load_versions(
                    record, model_dir, config_override, override_dir
                )
            finally:
                record.lock.release()
        except BaseException:
            _remove_dir(override_dir)
            raise
        log.info("model '%s' is ready (versions %s)", name, sorted(versions))

    async def _locked_record(self, name: str) -> ModelRecord:
        """The record of ``name`` with its lock held (the caller releases it)."""
        while True:
            record = self._records.setdefault(name, ModelRecord(name))
            await record.lock.acquire()
            if self._records.get(name) is record:
                return record
            # A failed load dropped this record while we waited: start over with a fresh one.
            record.lock.release()

    async def _load_versions(
        self,
        record: ModelRecord,
        model_dir: pathlib.Path,
        override: str | None,
        override_dir: pathlib.Path | None,
    ) -> dict[int, LoadedModel]:
        """Load every version from ``model_dir`` into ``record`` (its lock held)."""
        name = record.name
        try:
            # Recorded even if the load fails: polling retries only after a change.
            record.fingerprint = _fingerprint(model_dir)
            config = read_config(name, model_dir, override, auto_complete=self.auto_complete)
            if self.auto_complete:
                config = await complete_config(config, model_dir)
            if config.platform == ENSEMBLE:
                await self._load_composing(name, composing_models(config))
            versions = await load_model_dir(config, model_dir, self.root, self, self.bounds)
        except RpcError as exc:
            self._failed(record, exc.message)
            raise
        except Exception as exc:
            message = f"failed to load '{name}': {type(exc).__name__}: {exc}"
            self._failed(record, message)
            raise InvalidArgument(message) from None
        old, old_dir = record.set_versions(versions), record.override_dir
        record.state, record.reason = READY, ""
        record.override_dir = override_dir
        for model in old.values():
            await model.unload()
        _remove_dir(old_dir)
        return versions

    async def _load_composing(self, ensemble: str, names: list[str]) -> None:
        """Load the models an ensemble's steps call that are not ready yet (as Triton does)."""
        if ensemble in self._loading_ensembles:
            chain = " -> ".join([*self._loading_ensembles, ensemble])
            raise InvalidArgument(
                f"failed to load '{ensemble}', ensembles contain each other: {chain}"
            )
        self._loading_ensembles.append(ensemble)
        try:
            for name in names:
                if self.is_ready(name) or name == ensemble:
                    continue
                try:
                    await self.load(name)
                except RpcError as exc:
                    raise InvalidArgument(
                        f"failed to load '{ensemble}', its step model '{name}' did not load: "
                        f"{exc.message}"
                    ) from None
        finally:
            self._loading_ensembles.remove(ensemble)

    async def unload(self, name: str) -> None:
        """Unload ``name``; a name that is not loaded (whatever it is) has nothing to unload,
        as in Triton: no name check, no trace left."""
        record = self._records.get(name)
        if record is None:
            return
        async with record.lock:
            await self._unload(record, reason="unloaded")

    async def poll_once(self) -> None:
        """Load new or changed models, unload removed ones (poll mode)."""
        present = set(self.directory_models())
        for name in sorted(present):
            record = self._records.get(name)
            if record is None or record.fingerprint != _fingerprint(self.root / name):
                try:
                    await self.load(name)
                except RpcError as exc:
                    log.error("model '%s' did not load: %s", name, exc.message)
        for name in sorted(set(self._records) - present):
            await self.unload(name)
            self._records.pop(name, None)

    async def poll_forever(self) -> None:
        """poll_once() every poll_seconds until cancelled; a failed scan is logged, not fatal."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll_once()
            except Exception:
                # Any failure (not only OSError) would otherwise end polling silently; the
                # next scan may well succeed (a half-written folder, a model that raised).
                log.exception("polling the model repository %s failed", self.root)

    # ------------------------------------------------------------------ internals

    def _model_dir(
        self, name: str, override: str | None, files: Mapping[str, bytes]
    ) -> pathlib.Path:
        if not files:
            model_dir = self.root / name
            if not model_dir.is_dir():
                raise _not_polled(name)
            return model_dir
        if override is None:
            raise InvalidArgument(
                f"failed to load '{name}', file overrides need a 'config' parameter as well"
            )
        return self._write_override_files(name, files)

    def _write_override_files(self, name: str, files: Mapping[str, bytes]) -> pathlib.Path:
        """A fresh directory holding exactly the override files; it replaces the model's."""
        if self._scratch is None:
            # Resolved: with a symlinked TMPDIR, resolved file paths must still compare inside.
            scratch = tempfile.mkdtemp(prefix="asyncinfer-models-")
            self._scratch = pathlib.Path(scratch).resolve()
        # The name was checked (check_model_name): the prefix cannot leave the scratch folder.
        model_dir = pathlib.Path(tempfile.mkdtemp(dir=self._scratch, prefix=f"{name}-"))
        try:
            _write_files(name, model_dir, files)
        except BaseException:
            _remove_dir(model_dir)
            raise
        return model_dir

    def _failed(self, record: ModelRecord, message: str) -> None:
        if not record.versions:
            record.state, record.reason = UNAVAILABLE, message
            if not (self.root / record.name).is_dir():
                # Nothing to list or retry: keep no record for a name without a model folder.
                del self._records[record.name]
        log.debug("load of '%s' failed: %s", record.name, message)

    async def _unload(self, record: ModelRecord, *, reason: str) -> None:
        versions = record.set_versions({})
        record.state, record.reason = UNAVAILABLE, reason
        for model in versions.values():
            await model.unload()
        _remove_dir(record.override_dir)
        record.override_dir = None


def check_model_name(name: str) -> None:
    """A model name must be one plain folder name of the repository; Triton's texts.

    Empty or blank, and names that could leave the repository (any '/', or '..' itself), are
    refused as Triton refuses them; a name no folder can have ('.', a NUL, too long) is
    answered as a name the repository does not hold.
    """
    stripped = name.strip()
    if not stripped:
        raise InvalidArgument("Model name cannot be empty. Please enter a valid name to deploy.")
    if "/" in name or stripped == "..":
        raise InvalidArgument("model name must not contain path traversal characters")
    too_long = len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    if stripped == "." or "\0" in name or too_long:
        raise _not_polled(name)


def _not_polled(name: str) -> Internal:
    """Triton's answer to a load of a name the repository does not hold (INTERNAL, as its)."""
    return Internal(f"failed to load '{echo(name)}', failed to poll from model repository")


def _write_files(name: str, model_dir: pathlib.Path, files: Mapping[str, bytes]) -> None:
    """Write override files under ``model_dir`` (resolved), refusing paths that leave it."""
    for relative, content in files.items():
        what = f"failed to load '{name}', override file '{echo(relative)}'"
        if "\0" in relative:
            raise InvalidArgument(f"{what}: a file name cannot hold a NUL character")
        try:
            path = (model_dir / relative).resolve()
            if not path.is_relative_to(model_dir.resolve()):
                raise InvalidArgument(f"{what} is outside the model directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        except OSError as exc:
            raise Internal(
                f"failed to load '{name}', failed to poll from model repository: cannot write "
                f"override file '{echo(relative)}': {exc.strerror}"
            ) from None


def _remove_dir(path: pathlib.Path | None) -> None:
    """Remove a scratch override folder (files already loaded are no longer read)."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def parse_version(version: str) -> int | None:
    """The version a request names: '' means the latest ready one."""
    if version == "":
        return None
    try:
        number = int(version)
    except ValueError:
        number = -1
    if number < 0 or not version.strip().isdigit():
        raise InvalidArgument(
            f"failed to get model version from specified version string '{version}'"
        )
    return number


def _fingerprint(model_dir: pathlib.Path) -> tuple[tuple[str, int], ...]:
    """(relative path, mtime) of every file: poll mode reloads a model when it changes."""
    try:
        return tuple(
            sorted(
                (str(p.relative_to(model_dir)), p.stat().st_mtime_ns)
                for p in model_dir.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            )
        )
    except OSError:
        return ()
