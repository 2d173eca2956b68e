"""A python model's model.py: importing it, and the arguments its ``initialize`` gets; the one
set of rules thread instances (thread_instances.py) and process instances (_instance_process.py,
in their own processes) share.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import pathlib
import sys
import traceback
from types import ModuleType

from google.protobuf import json_format

from ...errors import ModelLoadFailed
from ...pb.inference.model_config_pb2 import ModelConfig
from .triton_python import pb_utils
from .triton_python.adapter import TRITON_CLASS, adapt

__all__ = [
    "DEFAULT_FILENAME",
    "MODEL_CLASS",
    "import_model",
    "initialize_args",
    "model_class",
    "one_line",
]

MODEL_CLASS = "Model"
DEFAULT_FILENAME = "model.py"
_module_ids = itertools.count()


def import_model(path: pathlib.Path, name: str, version: int) -> ModuleType:
    """A fresh module of ``path`` (never kept in sys.modules); ModelLoadFailed saying why not."""
    module_name = f"asyncinfer_models.{name}_v{version}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadFailed(f"failed to load '{name}' version {version}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    _provide_pb_utils()
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelLoadFailed(
            f"failed to load '{name}' version {version}: {path.name} does not import: "
            f"{one_line(exc)}"
        ) from None
    # Not kept in sys.modules: every load gets a fresh module, and an unload frees it.
    sys.modules.pop(module_name, None)
    return module


def _provide_pb_utils() -> None:
    """Make ``import triton_python_backend_utils`` resolve to asyncinfer's pb_utils (a real
    one already imported is left alone)."""
    sys.modules.setdefault(pb_utils.MODULE_NAME, pb_utils)


def model_class(module: ModuleType, path: pathlib.Path, name: str, version: int) -> type:
    """The class to instantiate per instance: ``Model`` (asyncinfer's API) or the adapter of
    ``TritonPythonModel`` (Triton's); ModelLoadFailed when the file defines both or neither."""
    ours = getattr(module, MODEL_CLASS, None)
    theirs = getattr(module, TRITON_CLASS, None)
    found = [n for n, c in ((MODEL_CLASS, ours), (TRITON_CLASS, theirs)) if isinstance(c, type)]
    if len(found) != 1:
        what = "both classes " + " and ".join(f"'{n}'" for n in found) if found else "neither"
        raise ModelLoadFailed(
            f"failed to load '{name}' version {version}: {path} defines {what}; a model.py "
            f"defines exactly one of class '{MODEL_CLASS}' (asyncinfer's model API) or class "
            f"'{TRITON_CLASS}' (Triton's python-backend API)"
        )
    chosen: type = ours if isinstance(ours, type) else theirs  # type: ignore[assignment]
    if not callable(getattr(chosen, "execute", None)):
        raise ModelLoadFailed(
            f"failed to load '{name}' version {version}: class '{found[0]}' in {path} has no "
            "execute(requests) method"
        )
    return chosen if chosen is ours else adapt(chosen)


def one_line(exc: BaseException) -> str:
    """An exception as one line of text: its type and message."""
    return "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")


def initialize_args(config: ModelConfig, version: int, repository: pathlib.Path) -> dict[str, str]:
    """What ``initialize(args)`` gets, as Triton's python backend gives it (strings)."""
    return {
        "model_config": json.dumps(json_format.MessageToDict(config)),
        "model_name": config.name,
        "model_version": str(version),
        "model_repository": str(repository),
    }
