"""pb_utils.ModelConfig: the config a ``TritonPythonModel.auto_complete_config`` completes.

It holds the model's config as Triton's dict (field names as in config.pbtxt); ``add_input``,
``add_output``, ``set_max_batch_size``, ``set_dynamic_batching`` and
``set_model_transaction_policy`` add to it, refusing what contradicts what the config already
says; ``as_dict`` reads it. The repository turns the result back into the model's config
(repository/auto_complete.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .pb_types import TritonModelException

__all__ = ["ModelConfig"]

_TENSOR_KEYS = frozenset(
    ("name", "data_type", "dims", "format", "optional", "reshape", "is_shape_tensor",
     "allow_ragged_batch", "label_filename", "is_non_linear_format_io")
)  # fmt: skip


class ModelConfig:
    """A model's config being completed; ``as_dict()`` is what it says so far."""

    def __init__(self, model_config: Mapping[str, Any]) -> None:
        self._config: dict[str, Any] = copy.deepcopy(dict(model_config))
        self._config.setdefault("input", [])
        self._config.setdefault("output", [])
        self._config.setdefault("max_batch_size", 0)

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._config)

    def set_max_batch_size(self, max_batch_size: int) -> None:
        if not isinstance(max_batch_size, int) or max_batch_size < 0:
            raise TritonModelException(
                f"set_max_batch_size() needs a non-negative int, got {max_batch_size!r}"
            )
        current = int(self._config.get("max_batch_size", 0))
        if current not in (0, max_batch_size):
            raise TritonModelException(
                f"configuration specified max_batch_size {current}, but the model's "
                f"auto_complete_config sets {max_batch_size}"
            )
        self._config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        self._config.setdefault("dynamic_batching", {})

    def set_model_transaction_policy(self, transaction_policy_dict: Mapping[str, Any]) -> None:
        unknown = set(transaction_policy_dict) - {"decoupled"}
        if unknown:
            raise TritonModelException(
                f"set_model_transaction_policy(): unknown key(s) {sorted(unknown)}; the "
                "policy has only 'decoupled'"
            )
        current = self._config.get("model_transaction_policy", {})
        wanted = bool(transaction_policy_dict.get("decoupled", False))
        if "decoupled" in current and bool(current["decoupled"]) != wanted:
            raise TritonModelException(
                f"configuration specified decoupled {bool(current['decoupled'])}, but the "
                f"model's auto_complete_config sets {wanted}"
            )
        self._config["model_transaction_policy"] = {"decoupled": wanted}

    def add_input(self, input: Mapping[str, Any]) -> None:
        self._add("input", input)

    def add_output(self, output: Mapping[str, Any]) -> None:
        self._add("output", output)

    def _add(self, kind: str, tensor: Mapping[str, Any]) -> None:
        if not isinstance(tensor, Mapping) or "name" not in tensor:
            raise TritonModelException(f"add_{kind}() needs a dict with at least a 'name'")
        unknown = set(tensor) - _TENSOR_KEYS
        if unknown:
            raise TritonModelException(
                f"add_{kind}('{tensor['name']}'): unknown key(s) {sorted(unknown)}"
            )
        for existing in self._config[kind]:
            if existing.get("name") != tensor["name"]:
                continue
            for key in ("data_type", "dims"):
                theirs = tensor.get(key)
                if theirs is not None and key in existing and _same(existing[key]) != _same(theirs):
                    raise TritonModelException(
                        f"unable to add {kind} '{tensor['name']}': the configuration already "
                        f"has it with {key} {existing[key]}, the model's auto_complete_config "
                        f"says {theirs}"
                    )
            for key, value in tensor.items():
                existing.setdefault(key, copy.deepcopy(value))
            return
        self._config[kind].append(copy.deepcopy(dict(tensor)))


def _same(value: Any) -> Any:
    return [int(v) for v in value] if isinstance(value, list | tuple) else value
