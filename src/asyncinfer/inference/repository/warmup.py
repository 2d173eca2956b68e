"""Warmup from config: run each ``model_warmup`` sample through a freshly loaded model's data
plane, as a request from a client would run (the loader clears the statistics afterwards)."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
import numpy.typing as npt

from ...datatypes import BYTES, Datatype, deserialize_bytes, from_config
from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelWarmup
from ...signature import check_extent
from ..infer_types import InferRequest
from ..model import LoadedModel
from ..model_files import read_confined

__all__ = ["warm_up"]

Array = npt.NDArray[Any]


async def warm_up(model: LoadedModel, model_dir: pathlib.Path) -> None:
    """Run every warmup sample ``count`` times (default once); any failure fails the load."""
    for sample in model.config.model_warmup:
        arrays = {
            name: _sample_input(model, sample, name, spec, model_dir)
            for name, spec in sample.inputs.items()
        }
        for _ in range(max(sample.count, 1)):
            request = InferRequest.of_arrays(arrays, id=f"warmup:{sample.name}")
            async for response in model.stream(request):  # decoupled models' too
                if response.error is not None:
                    raise response.error


def _sample_input(
    model: LoadedModel,
    sample: ModelWarmup,
    name: str,
    spec: ModelWarmup.Input,
    model_dir: pathlib.Path,
) -> Array:
    what = f"warmup sample '{sample.name}' input '{name}' of model '{model.name}'"
    datatype = from_config(spec.data_type)
    if datatype is None or any(d < 0 for d in spec.dims):
        raise InvalidArgument(f"{what}: needs a valid data_type and dims without -1")
    shape = tuple(int(d) for d in spec.dims)
    if model.signature.max_batch_size > 0:
        shape = (max(sample.batch_size, 1), *shape)
    check_extent(model.name, name, shape, datatype)  # before zeros of that shape exist
    choice = spec.WhichOneof("input_data_type")
    if choice == "random_data":
        return _random(datatype, shape)
    if choice == "input_data_file":
        field = f"input_data_file of {what}"
        relative = os.path.join("warmup", spec.input_data_file)
        data = read_confined(model_dir, relative, model=model.name, field=field)
        return _from_file(data, datatype, shape, what)
    return _zeros(datatype, shape)


def _zeros(datatype: Datatype, shape: tuple[int, ...]) -> Array:
    if datatype.wire == BYTES:
        array = np.empty(shape, dtype=np.object_)
        array.fill(b"")
        return array
    return np.zeros(shape, dtype=datatype.dtype)


def _random(datatype: Datatype, shape: tuple[int, ...]) -> Array:
    rng = np.random.default_rng()
    if datatype.wire == BYTES:
        array = np.empty(shape, dtype=np.object_)
        array.fill(b"warmup")
        return array
    return rng.integers(0, 2, size=shape).astype(datatype.dtype)


def _from_file(data: bytes, datatype: Datatype, shape: tuple[int, ...], what: str) -> Array:
    count = int(np.prod(shape))
    if datatype.wire == BYTES:
        return deserialize_bytes(data, count, what=what).reshape(shape)
    if len(data) != count * datatype.itemsize:
        raise InvalidArgument(
            f"{what}: the file holds {len(data)} bytes, expected {count * datatype.itemsize}"
        )
    return np.frombuffer(data, dtype=datatype.dtype).reshape(shape)
