"""Files a model's config names, confined to the model's own directory.

A config (config.pbtxt, or an override a client sends with a load request) names files by
path: ``default_model_filename``, each output's ``label_filename``, each warmup input's
``input_data_file``. Every such path is resolved here, symlinks followed, and must land inside
the model's directory; otherwise the load fails naming the field. Files that are read whole
(labels, warmup data) must also be regular files of bounded size, opened without blocking, so
a FIFO or ``/dev/zero`` named by a config cannot stall the loop or grow the process.
"""

from __future__ import annotations

import os
import pathlib
import stat

from ..errors import ModelLoadFailed, echo
from ..pb.inference.model_config_pb2 import ModelConfig

__all__ = ["MAX_DATA_FILE_BYTES", "confined_path", "model_file", "read_confined"]

#: The largest label or warmup data file a model may name.
MAX_DATA_FILE_BYTES = 256 * 1024 * 1024


def confined_path(
    model_dir: pathlib.Path, relative: str, *, model: str, field: str
) -> pathlib.Path:
    """``relative`` resolved under ``model_dir`` (symlinks followed); ModelLoadFailed naming
    ``field`` when it is absolute, holds a NUL, or resolves outside the model's directory."""
    what = f"failed to load '{echo(model)}', {field} '{echo(relative)}'"
    if "\0" in relative:
        raise ModelLoadFailed(f"{what} holds a NUL character")
    if os.path.isabs(relative):
        raise ModelLoadFailed(f"{what} must be a path relative to the model's directory")
    try:
        root = model_dir.resolve(strict=True)
        path = (model_dir / relative).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise ModelLoadFailed(f"{what} cannot be resolved: {exc}") from None
    if not path.is_relative_to(root):
        raise ModelLoadFailed(f"{what} resolves outside the model's directory")
    try:
        path.stat()
    except FileNotFoundError:
        pass  # the caller says what a missing file means
    except OSError as exc:  # a name too long, a component that is not a directory
        raise ModelLoadFailed(f"{what} cannot be used: {exc.strerror}") from None
    return path


def read_confined(
    model_dir: pathlib.Path,
    relative: str,
    *,
    model: str,
    field: str,
    max_bytes: int = MAX_DATA_FILE_BYTES,
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` that ``field`` names inside the
    model's directory; ModelLoadFailed naming the field for anything else."""
    path = confined_path(model_dir, relative, model=model, field=field)
    what = f"failed to load '{echo(model)}', {field} '{echo(relative)}'"
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ModelLoadFailed(f"{what} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelLoadFailed(f"{what} is not a regular file")
        if info.st_size > max_bytes:
            raise ModelLoadFailed(
                f"{what} holds {info.st_size} bytes, more than the bound of {max_bytes}"
            )
        # Read one byte past the bound: a file that grows after fstat is still refused.
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelLoadFailed(f"{what} holds more than the bound of {max_bytes} bytes")
    return data


def model_file(config: ModelConfig, version_dir: pathlib.Path, default: str) -> pathlib.Path:
    """The file a version's backend loads: ``default_model_filename`` confined to the model's
    directory when the config names one, else ``default`` in the version's directory (which a
    repository may link anywhere: no config chose it)."""
    if not config.default_model_filename:
        return version_dir / default
    relative = os.path.join(version_dir.name, config.default_model_filename)
    return confined_path(
        version_dir.parent, relative, model=config.name, field="default_model_filename"
    )
