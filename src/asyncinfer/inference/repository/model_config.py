"""Model configuration: parse config.pbtxt, apply JSON overrides, validate, derive the signature.

A config is the protocol's ``ModelConfig`` message, parsed from protobuf text format with
google.protobuf.text_format. Its :class:`~asyncinfer.signature.Signature` is what the request
path needs from it: the inputs and outputs with their datatypes and dims, and the batching limit.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, text_format

from ...datatypes import from_config
from ...errors import InvalidArgument, ModelLoadFailed
from ...pb.inference.model_config_pb2 import ModelConfig
from ...signature import Signature, TensorSpec

__all__ = [
    "apply_json_override",
    "parse_pbtxt",
    "signature",
]


def parse_pbtxt(text: str, *, model: str) -> ModelConfig:
    """Parse config.pbtxt text; a missing name becomes the model's directory name."""
    config = ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ModelLoadFailed(f"config.pbtxt of model '{model}' does not parse: {exc}") from None
    except RecursionError:
        raise ModelLoadFailed(
            f"config.pbtxt of model '{model}' nests messages deeper than the parser allows"
        ) from None
    if not config.name:
        config.name = model
    return config


def apply_json_override(config: ModelConfig, override: str, *, model: str) -> ModelConfig:
    """Return ``config`` with the top-level fields set in the JSON ``override`` replaced.

    Triton takes an override as the whole configuration; we lay its top-level fields over
    config.pbtxt, so ``{"max_batch_size": "16"}`` changes only that field.
    """
    try:
        document = json.loads(override)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"failed to load '{model}', the config override is not valid JSON: {exc}"
        ) from None
    except RecursionError:
        raise InvalidArgument(
            f"failed to load '{model}', the config override nests deeper than the JSON "
            "parser allows"
        ) from None
    if not isinstance(document, dict):
        raise InvalidArgument(
            f"failed to load '{model}', the config override must be a JSON object, "
            f"not {type(document).__name__}"
        )
    replacement = ModelConfig()
    try:
        json_format.ParseDict(document, replacement)
    except (json_format.ParseError, RecursionError) as exc:
        raise InvalidArgument(
            f"failed to load '{model}', the config override is not a ModelConfig: "
            f"{exc if isinstance(exc, json_format.ParseError) else 'it nests too deep'}"
        ) from None
    merged = ModelConfig()
    merged.CopyFrom(config)
    # Every field the override names is replaced, an empty list ("output": []) included.
    named: set[str] = set()
    for field in ModelConfig.DESCRIPTOR.fields:
        if field.name in document or field.json_name in document:
            named.add(field.name)
    for field, _ in replacement.ListFields():
        named.add(field.name)
    for name in named:
        merged.ClearField(name)
    merged.MergeFrom(replacement)
    if not merged.name:
        merged.name = model
    return merged


def signature(config: ModelConfig) -> Signature:
    """Validate the parts of ``config`` the request path relies on and derive its Signature."""
    model = config.name
    if config.max_batch_size < 0:
        raise ModelLoadFailed(
            f"model '{model}': max_batch_size must be >= 0, not {config.max_batch_size}"
        )
    inputs = _specs(model, "input", config.input)
    outputs = _specs(model, "output", config.output)
    if not outputs:
        raise ModelLoadFailed(f"model '{model}' declares no outputs; a model needs at least one")
    return Signature(model, config.max_batch_size, inputs, outputs)


def _specs(model: str, kind: str, tensors: Any) -> dict[str, TensorSpec]:
    specs: dict[str, TensorSpec] = {}
    for tensor in tensors:
        datatype = from_config(tensor.data_type)
        if datatype is None:
            raise ModelLoadFailed(
                f"model '{model}': {kind} '{tensor.name}' has no valid data_type "
                "(expected TYPE_BOOL, TYPE_INT8..TYPE_INT64, TYPE_UINT8..TYPE_UINT64, "
                "TYPE_FP16, TYPE_FP32, TYPE_FP64, TYPE_BF16 or TYPE_STRING)"
            )
        if not tensor.name:
            raise ModelLoadFailed(f"model '{model}': an {kind} has an empty name")
        dims = tuple(int(d) for d in tensor.dims)
        if any(d < -1 or d == 0 for d in dims):
            raise ModelLoadFailed(
                f"model '{model}': {kind} '{tensor.name}' dims {list(dims)} must be positive "
                "or -1 (any extent)"
            )
        if tensor.name in specs:
            raise ModelLoadFailed(f"model '{model}': {kind} '{tensor.name}' is declared twice")
        specs[tensor.name] = TensorSpec(
            tensor.name,
            datatype,
            dims,
            optional=getattr(tensor, "optional", False),
            label_filename=getattr(tensor, "label_filename", ""),
        )
    return specs
