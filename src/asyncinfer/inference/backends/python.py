"""The python backend: imports a version's model.py, runs its Model instances, finalizes them.

Each configured instance (instance_group count, default 1) is one ``Model`` object; a call
leases one for its execute, so a model's own state is never used by two calls at once.
``async def`` hooks run on the loop; plain ``def`` hooks run in a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import itertools
import json
import logging
import pathlib
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from google.protobuf import json_format

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig
from ..inprocess import ModelCaller, ModelLookup
from ..python_model import Request, Response

__all__ = ["MODEL_CLASS", "ModelLoadFailed", "PythonBackend"]

MODEL_CLASS = "Model"
DEFAULT_FILENAME = "model.py"
_module_ids = itertools.count()
log = logging.getLogger("asyncinfer.inference")


class ModelLoadFailed(InvalidArgument):
    """A model that could not be loaded; the message says why (import error text included)."""


async def _call(hook: Any, *args: Any) -> Any:
    """Await an async hook on the loop; run a plain one in a worker thread."""
    if inspect.iscoroutinefunction(hook):
        return await hook(*args)
    return await asyncio.to_thread(hook, *args)


class PythonBackend:
    """One loaded version of a python-backend model, with its pool of Model instances."""

    def __init__(self, name: str, version: int, instances: Sequence[Any]) -> None:
        self.name = name
        self.version = version
        self._instances = list(instances)
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        for instance in self._instances:
            self._idle.put_nowait(instance)

    @classmethod
    async def load(
        cls,
        config: ModelConfig,
        version: int,
        version_dir: pathlib.Path,
        repository: pathlib.Path,
        *,
        models: ModelLookup | None = None,
    ) -> PythonBackend:
        """Import model.py, create and initialize every instance; ModelLoadFailed says why not.

        With ``models``, initialize() finds a ModelCaller in ``args["models"]`` to call other
        loaded models in process.
        """
        name = config.name
        path = version_dir / (config.default_model_filename or DEFAULT_FILENAME)
        if not path.is_file():
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} does not exist"
            )
        module = await asyncio.to_thread(_import, path, name, version)
        model_class = getattr(module, MODEL_CLASS, None)
        if not isinstance(model_class, type):
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} defines no class "
                f"'{MODEL_CLASS}'"
            )
        args: dict[str, Any] = dict(_initialize_args(config, version, repository))
        if models is not None:
            args["models"] = ModelCaller(models)
        instances = []
        try:
            for index in range(_instance_count(config)):
                instance = model_class()
                instances.append(instance)
                hook = getattr(instance, "initialize", None)
                if hook is not None:
                    await _call(hook, {**args, "model_instance_name": f"{name}_{index}"})
        except Exception as exc:
            await _finalize_all(instances)
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: initialize() raised {_one_line(exc)}"
            ) from None
        return cls(name, version, instances)

    async def execute(self, requests: list[Request]) -> list[Response]:
        """Run the model on ``requests``; one Response each, in order."""
        instance = await self._idle.get()
        try:
            responses = await _call(instance.execute, requests)
        finally:
            # Returned on every path, cancellation included; a thread still running a
            # cancelled sync execute keeps the instance busy only until it returns.
            self._idle.put_nowait(instance)
        if not isinstance(responses, list | tuple) or len(responses) != len(requests):
            raise TypeError(
                f"model '{self.name}' execute() must return a list of {len(requests)} "
                f"Response objects, got {type(responses).__name__}"
            )
        return list(responses)

    async def unload(self) -> None:
        await _finalize_all(self._instances)
        self._instances.clear()


def _import(path: pathlib.Path, name: str, version: int) -> ModuleType:
    module_name = f"asyncinfer_models.{name}_v{version}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadFailed(f"failed to load '{name}' version {version}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelLoadFailed(
            f"failed to load '{name}' version {version}: {path.name} does not import: "
            f"{_one_line(exc)}"
        ) from None
    # Not kept in sys.modules: every load gets a fresh module, and an unload frees it.
    sys.modules.pop(module_name, None)
    return module


def _one_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")


def _initialize_args(config: ModelConfig, version: int, repository: pathlib.Path) -> dict[str, str]:
    return {
        "model_config": json.dumps(json_format.MessageToDict(config)),
        "model_name": config.name,
        "model_version": str(version),
        "model_repository": str(repository),
    }


def _instance_count(config: ModelConfig) -> int:
    return sum(max(group.count, 1) for group in config.instance_group) or 1


async def _finalize_all(instances: Sequence[Any]) -> None:
    for instance in instances:
        hook = getattr(instance, "finalize", None)
        if hook is not None:
            try:
                await _call(hook)
            except Exception:
                log.exception("finalize() of a model instance raised")
