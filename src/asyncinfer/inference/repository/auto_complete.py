"""Config auto-complete, as Triton does it: what a model's config leaves out, its files supply.

- No ``backend`` or ``platform``: the model file decides (``model.py``: python, ``model.onnx``:
  onnxruntime), as Triton picks a backend from the file.
- An ONNX model whose config declares no inputs or no outputs gets them from the model file's
  signature (names, datatypes, dims; a dimension with no fixed extent is -1). A tensor of
  unknown rank fails the load saying so: onnxruntime reports it as a scalar, so no dims
  would load; its config must declare it. When every input and output has a variable first
  dimension and the config does not say ``max_batch_size``, that dimension becomes the batch
  dimension
  (``max_batch_size`` 4, Triton's default, with a dynamic batcher); otherwise dims are the
  file's as they are.
- A python model whose ``TritonPythonModel`` has ``auto_complete_config`` gets the config
  back from it (pb_utils.ModelConfig: ``add_input``, ``set_max_batch_size`` and the rest).

Off with ``--disable-auto-complete-config`` (``build_server(auto_complete=False)``). The
completed config is the model's config everywhere after: ModelConfig shows it.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

from google.protobuf import json_format

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import DataType, ModelConfig, ModelInput, ModelOutput
from ..backends.engine import engine_kind
from ..backends.model_module import DEFAULT_FILENAME, import_model, one_line
from ..backends.triton_python.adapter import TRITON_CLASS, triton_config_dict
from ..backends.triton_python.pb_config import ModelConfig as AutoCompleteConfig
from ..model_files import model_file

__all__ = ["DEFAULT_MAX_BATCH_SIZE", "complete_config"]

#: The max_batch_size Triton gives an ONNX model it finds batchable (its default-max-batch-size).
DEFAULT_MAX_BATCH_SIZE = 4
_ONNX_FILE = "model.onnx"
_ORT_CONFIG_TYPES = {
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(bfloat16)": "TYPE_BF16",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}


async def complete_config(config: ModelConfig, model_dir: pathlib.Path) -> ModelConfig:
    """``config`` with what its model's files supply; InvalidArgument naming what failed."""
    version_dir = _latest_version_dir(model_dir)
    if version_dir is None:
        return config  # select_versions says "no version is available"
    completed = ModelConfig()
    completed.CopyFrom(config)
    if not completed.backend and not completed.platform:
        _pick_backend(completed, version_dir)
    if engine_kind(completed) == "onnxruntime":
        if not completed.input or not completed.output:
            path = model_file(completed, version_dir, _ONNX_FILE)
            await asyncio.to_thread(_complete_onnx, completed, path)
    elif completed.backend == "python":
        path = model_file(completed, version_dir, DEFAULT_FILENAME)
        if path.is_file():
            completed = await asyncio.to_thread(_complete_python, completed, path)
    return completed


def _latest_version_dir(model_dir: pathlib.Path) -> pathlib.Path | None:
    versions = [e for e in model_dir.iterdir() if e.is_dir() and e.name.isdigit()]
    return max(versions, key=lambda e: int(e.name)) if versions else None


def _pick_backend(config: ModelConfig, version_dir: pathlib.Path) -> None:
    if (version_dir / _ONNX_FILE).is_file():
        config.backend = "onnxruntime"
    elif (version_dir / DEFAULT_FILENAME).is_file():
        config.backend = "python"


# ---------------------------------------------------------------------- ONNX


def _complete_onnx(config: ModelConfig, path: pathlib.Path) -> None:
    name = config.name
    try:
        given, answered = _onnx_signature(path)
    except Exception as exc:
        raise InvalidArgument(
            f"failed to load '{name}', auto-complete cannot read "
            f"{path.parent.name}/{path.name}: {one_line(exc)}"
        ) from None
    inputs = [_onnx_tensor(name, *arg) for arg in given]
    outputs = [_onnx_tensor(name, *arg) for arg in answered]
    batchable = all(dims and dims[0] == -1 for _, _, dims in inputs + outputs)
    batched = config.max_batch_size > 0 or (batchable and not config.input and not config.output)
    if batched and not batchable:
        raise InvalidArgument(
            f"failed to load '{name}', max_batch_size {config.max_batch_size} needs every "
            "input and output of the model file to have a variable first dimension"
        )
    if batched and config.max_batch_size == 0:
        config.max_batch_size = DEFAULT_MAX_BATCH_SIZE
        if config.WhichOneof("scheduling_choice") is None:
            config.dynamic_batching.SetInParent()
    skip = 1 if batched else 0
    if not config.input:
        config.input.extend(ModelInput(name=n, data_type=t, dims=d[skip:]) for n, t, d in inputs)
    if not config.output:
        config.output.extend(ModelOutput(name=n, data_type=t, dims=d[skip:]) for n, t, d in outputs)


#: (name, ORT type string, dims (None: unknown rank; str or None items: symbolic))
_Arg = tuple[str, str, list[Any] | None]


def _onnx_signature(path: pathlib.Path) -> tuple[list[_Arg], list[_Arg]]:
    """The graph's inputs (initializers excluded) and outputs. Through the onnx package when
    it is installed, which tells an input of unknown rank from a scalar; onnxruntime otherwise."""
    try:
        import onnx
    except ImportError:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return (
            [(a.name, a.type, list(a.shape)) for a in session.get_inputs()],
            [(a.name, a.type, list(a.shape)) for a in session.get_outputs()],
        )
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}

    def arg(info: Any) -> _Arg:
        tensor = info.type.tensor_type
        type_name = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        ort_type = _NP_TO_ORT.get(type_name, f"tensor({type_name})")
        if not tensor.HasField("shape"):
            return info.name, ort_type, None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        return info.name, ort_type, dims

    inputs = [arg(info) for info in graph.input if info.name not in initializers]
    return inputs, [arg(info) for info in graph.output]


_NP_TO_ORT = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "float16": "tensor(float16)",
    "int8": "tensor(int8)",
    "int16": "tensor(int16)",
    "int32": "tensor(int32)",
    "int64": "tensor(int64)",
    "uint8": "tensor(uint8)",
    "uint16": "tensor(uint16)",
    "uint32": "tensor(uint32)",
    "uint64": "tensor(uint64)",
    "bool": "tensor(bool)",
    "object": "tensor(string)",
}


def _onnx_tensor(
    model: str, name: str, type_name: str, shape: list[Any] | None
) -> tuple[str, Any, list[int]]:
    config_type = _ORT_CONFIG_TYPES.get(type_name)
    if config_type is None:
        raise InvalidArgument(
            f"failed to load '{model}', auto-complete: tensor '{name}' has type "
            f"{type_name}, which has no Triton datatype"
        )
    if shape is None:
        # onnxruntime reports such a tensor as a scalar, so no dims we could write would load.
        raise InvalidArgument(
            f"failed to load '{model}', auto-complete: tensor '{name}' has no shape (unknown "
            "rank) in the model file; declare its inputs and outputs in config.pbtxt"
        )
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in shape]
    return name, DataType.Value(config_type), dims


# ---------------------------------------------------------------------- python


def _complete_python(config: ModelConfig, path: pathlib.Path) -> ModelConfig:
    name = config.name
    module = import_model(path, name, 0)
    model_class = getattr(module, TRITON_CLASS, None)
    hook = getattr(model_class, "auto_complete_config", None) if model_class else None
    if hook is None:
        return config
    given = AutoCompleteConfig(triton_config_dict(config))
    try:
        returned = hook(given)
    except Exception as exc:
        raise InvalidArgument(
            f"failed to load '{name}', auto_complete_config raised {one_line(exc)}"
        ) from None
    if not isinstance(returned, AutoCompleteConfig):
        raise InvalidArgument(
            f"failed to load '{name}', auto_complete_config must return the pb_utils.ModelConfig "
            f"it was given, not {type(returned).__name__}"
        )
    completed = ModelConfig()
    try:
        json_format.ParseDict(returned.as_dict(), completed)
    except json_format.ParseError as exc:
        raise InvalidArgument(
            f"failed to load '{name}', the config auto_complete_config returned is not a "
            f"model config: {exc}"
        ) from None
    completed.name = name
    return completed
