"""What the control calls of every front end do, as plain values: model metadata, the models a
statistics call covers, the repository index, model load (its parameters read) and unload, and
the trace settings. The gRPC Contexts (rpc/control.py, rpc/settings.py) and the HTTP routes
(http/routes.py) only turn these into their wire's messages, so the two protocols give the same
answers and the same error texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidArgument, NotFound
from .model import LoadedModel
from .service import InferenceResources

__all__ = [
    "IndexEntry",
    "ModelMetadata",
    "TensorMetadata",
    "load_model",
    "model_metadata",
    "repository_index",
    "statistics_models",
    "trace_settings",
    "unload_model",
]


@dataclasses.dataclass(frozen=True, slots=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: list[int]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelMetadata:
    """A model's metadata as Triton's clients read it (versions: those loaded)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


@dataclasses.dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str


def model_metadata(resources: InferenceResources, name: str, version: str = "") -> ModelMetadata:
    repository = resources.repository
    model = repository.get(name, version)
    sig = model.signature
    tensors = [
        [
            TensorMetadata(spec.name, spec.datatype.wire, list(spec.shape(sig.max_batch_size)))
            for spec in specs.values()
        ]
        for specs in (sig.inputs, sig.outputs)
    ]
    return ModelMetadata(
        model.name,
        [str(m.version) for m in repository.versions(model.name) or [model]],
        model.config.platform or model.config.backend,
        *tensors,
    )


def statistics_models(
    resources: InferenceResources, name: str = "", version: str = ""
) -> list[LoadedModel]:
    """The model versions a statistics call covers: every ready one when ``name`` is empty."""
    repository = resources.repository
    if name:
        model = repository.get(name, version)
        return [model] if version else repository.versions(model.name)
    return [m for each in sorted(repository.ready_models()) for m in repository.versions(each)]


def repository_index(
    resources: InferenceResources, repository_name: str = "", *, ready: bool = False
) -> list[IndexEntry]:
    if repository_name:
        raise NotFound(
            f"unknown repository '{repository_name}': this server has one "
            "repository; leave repository_name empty"
        )
    return [
        IndexEntry(name, version, state, reason)
        for name, version, state, reason in resources.repository.index()
        if not ready or state == "READY"
    ]


async def load_model(
    resources: InferenceResources, name: str, parameters: Mapping[str, Any]
) -> None:
    """Load (or reload) ``name``; ``parameters``: ``config`` (a JSON config, str) and
    ``file:<path>`` (the file's bytes), as plain values."""
    repository = resources.repository
    repository.check_control()
    override: str | None = None
    files: dict[str, bytes] = {}
    for key, value in parameters.items():
        if key == "config":
            if not isinstance(value, str):
                raise InvalidArgument(
                    f"failed to load '{name}', parameter 'config' must be a string of JSON"
                )
            override = value
        elif key.startswith("file:"):
            if not isinstance(value, bytes):
                raise InvalidArgument(
                    f"failed to load '{name}', parameter '{key}' must be the file's bytes"
                )
            files[key[len("file:") :]] = value
        else:
            raise InvalidArgument(
                f"failed to load '{name}', unknown parameter '{key}' (expected 'config' "
                "or 'file:<path>')"
            )
    await repository.load(name, config_override=override, files=files)


async def unload_model(resources: InferenceResources, name: str) -> None:
    repository = resources.repository
    repository.check_control()
    await repository.unload(name)


def trace_settings(
    resources: InferenceResources, model: str, changes: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The trace settings in force for ``model`` (the server's when empty) after ``changes``."""
    if model:
        resources.repository.get(model)  # Triton's unknown-model text
    return resources.trace_settings.update(changes, model)
