"""A model's signature (its input and output tensors) and the one validator of tensors against it.

A :class:`Signature` is built once per model: from its config in the inference service, from
its bindings for an engine. Every request is checked against it here and nowhere else, with
Triton's texts, whoever sends it (gRPC, an in-process call, an engine's own ``infer``):

- inputs, from what a request declares of each (name, datatype, shape), before any byte is
  read, in Triton's order: names, then each input's datatype and shape, then the batch size
  all inputs share (:meth:`Signature.check_inputs`); arrays in process go through the same
  checks (:meth:`Signature.check_arrays`);
- byte sizes, as the data is read (:meth:`Signature.check_byte_size`,
  :meth:`Signature.check_element_count`, and BYTES element counts, walked over the payload
  before anything is allocated: :meth:`Signature.read_bytes`);
- outputs: the names a request asks for (:meth:`Signature.check_requested`) and every array a
  model returns (:meth:`Signature.check_output`, Internal: a mismatch is the model's bug).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .datatypes import BYTES, Datatype, from_numpy, from_wire, object_array, shape_fits, split_bytes
from .errors import Internal, InvalidArgument, StringCountError, echo

__all__ = ["MAX_TENSOR_BYTES", "DeclaredTensor", "Signature", "TensorSpec", "check_extent"]

Array = npt.NDArray[Any]

#: The most bytes one input tensor may span (1 TiB): a shape beyond it cannot be real data.
MAX_TENSOR_BYTES = 2**40


class DeclaredTensor(Protocol):
    """What a request declares of one input before its data is read."""

    @property
    def name(self) -> str: ...

    @property
    def datatype(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Declared:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: name, datatype and dims without the batch dimension."""

    name: str
    datatype: Datatype
    dims: tuple[int, ...]
    optional: bool = False
    label_filename: str = ""

    def shape(self, max_batch_size: int) -> tuple[int, ...]:
        """The full shape as metadata reports it: a leading -1 when the model batches."""
        return (-1, *self.dims) if max_batch_size > 0 else self.dims


@dataclasses.dataclass(frozen=True, eq=False)
class Signature:
    """What a request is checked against: inputs and outputs in config order, batching limit."""

    model: str
    max_batch_size: int
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    #: Full input shapes as requests must send them (leading -1 when batching).
    shapes: Mapping[str, tuple[int, ...]] = dataclasses.field(init=False)
    #: The names of the non-optional inputs, in config order.
    required: list[str] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        shapes = {n: s.shape(self.max_batch_size) for n, s in self.inputs.items()}
        object.__setattr__(self, "shapes", shapes)
        required = [n for n, s in self.inputs.items() if not s.optional]
        object.__setattr__(self, "required", required)

    @classmethod
    def of_tensors(
        cls,
        model: str,
        inputs: Iterable[tuple[str, str, tuple[int, ...]]],
        outputs: Iterable[tuple[str, str, tuple[int, ...]]],
    ) -> Signature:
        """A non-batching signature from (name, wire datatype, shape) triples, -1 meaning any
        extent: an engine's bindings. A datatype the table does not know is ValueError."""

        def specs(tensors: Iterable[tuple[str, str, tuple[int, ...]]]) -> dict[str, TensorSpec]:
            found = {}
            for name, wire, shape in tensors:
                datatype = from_wire(wire)
                if datatype is None:
                    raise ValueError(f"model '{model}': tensor '{name}' has datatype {wire!r}")
                found[name] = TensorSpec(name, datatype, tuple(shape))
            return found

        return cls(model, 0, specs(inputs), specs(outputs))

    # ------------------------------------------------------------------ inputs

    def check_inputs(self, tensors: Sequence[DeclaredTensor]) -> int:
        """Check what a request declares of its inputs; the request's batch size (1 if the
        model does not batch). InvalidArgument with Triton's text at the first problem."""
        self._check_names(tensors)
        batch_sizes = set()
        for tensor in tensors:
            self._check_input(tensor)
            if self.max_batch_size > 0:
                batch_sizes.add(tensor.shape[0])
        if len(batch_sizes) > 1:
            raise InvalidArgument(
                f"inputs of a request to model '{self.model}' must have the same batch size, "
                f"got {sorted(batch_sizes)}"
            )
        return batch_sizes.pop() if batch_sizes else 1

    def check_arrays(self, arrays: Mapping[str, object]) -> int:
        """:meth:`check_inputs` for arrays given in process; the batch size. Each value must
        be a numpy array of the datatype's own (little-endian) dtype: nothing is converted."""
        declared = [
            _Declared(name, _datatype_of(self.model, name, array), _shape_of(array))
            for name, array in arrays.items()
        ]
        return self.check_inputs(declared)

    def _check_names(self, tensors: Sequence[DeclaredTensor]) -> None:
        names = [tensor.name for tensor in tensors]
        if names == self.required:
            return  # the usual request: every input once, in config order
        seen: list[str] = []
        for name in names:
            if name not in self.inputs:
                raise InvalidArgument(
                    f"unexpected inference input '{name}' for model '{self.model}'; "
                    f"its inputs are {list(self.inputs)}"
                )
            if name in seen:
                raise InvalidArgument(
                    f"input '{name}' appears more than once in a request to model '{self.model}'"
                )
            seen.append(name)
        missing = [n for n, s in self.inputs.items() if n not in seen and not s.optional]
        if missing:
            raise InvalidArgument(
                f"expected {len(self.inputs)} inputs but got {len(seen)} inputs for model "
                f"'{self.model}'. Got input(s) {seen}, but missing required input(s) "
                f"{missing}. Please provide all required input(s)."
            )

    def _check_input(self, tensor: DeclaredTensor) -> None:
        model, name, shape = self.model, tensor.name, tensor.shape
        spec = self.inputs[name]
        if tensor.datatype != spec.datatype.wire:
            raise InvalidArgument(
                f"inference input '{name}' data-type is '{tensor.datatype}', but model "
                f"'{model}' expects '{spec.datatype.wire}'"
            )
        if shape and min(shape) < 0:
            raise InvalidArgument(
                f"inference input '{name}' for model '{model}' has a negative dimension in its "
                f"shape {list(shape)}; every dimension must be >= 0"
            )
        expected = self.shapes[name]
        if self.max_batch_size > 0 and len(shape) == len(expected) and shape:
            if shape[0] > self.max_batch_size:
                raise InvalidArgument(
                    f"inference request batch-size must be <= {self.max_batch_size} for "
                    f"'{model}' (input '{name}' has batch size {shape[0]})"
                )
            if shape[0] == 0:
                raise InvalidArgument(
                    f"inference input '{name}' for model '{model}' has batch size 0; it must "
                    f"be 1..{self.max_batch_size}"
                )
        if not shape_fits(shape, expected):
            raise InvalidArgument(
                f"unexpected shape for input '{name}' for model '{model}'. Expected "
                f"{list(expected)}, got {list(shape)}"
            )
        check_extent(model, name, shape, spec.datatype)

    def check_byte_size(self, name: str, shape: tuple[int, ...], byte_size: int) -> None:
        """The byte size of a fixed-size input's data against its checked shape."""
        datatype = self.inputs[name].datatype
        count = math.prod(shape)
        expected = count * datatype.itemsize
        if byte_size != expected:
            raise InvalidArgument(
                f"unexpected total byte size {byte_size} for input '{name}' for model "
                f"'{self.model}', expecting {expected} ({count} elements of {datatype.wire} "
                f"for shape {list(shape)})"
            )

    def check_shm_byte_size(self, name: str, shape: tuple[int, ...], byte_size: int) -> None:
        """The byte size a fixed-size input's shared-memory span names, against its checked
        shape (Triton's text)."""
        expected = math.prod(shape) * self.inputs[name].datatype.itemsize
        if byte_size != expected:
            raise InvalidArgument(
                f"input byte size mismatch for input '{name}' for model '{self.model}'. "
                f"Expected {expected}, got {byte_size}"
            )

    def read_bytes(self, name: str, shape: tuple[int, ...], buffer: bytes | memoryview) -> Array:
        """A BYTES input's elements from their length-prefixed layout, counted against its
        checked shape before anything of the shape's size is allocated; Triton's texts."""
        expected = math.prod(shape)
        found = split_bytes(buffer, expected)
        if found.problem:
            what = "string length indicator" if "4 bytes" in found.problem else "string"
            raise InvalidArgument(
                f"incomplete {what} for inference input '{name}' for model '{self.model}', "
                f"{found.problem}"
            )
        self.check_string_count(name, expected, len(found.items), more=found.more)
        return object_array(found.items).reshape(shape)

    def check_string_count(self, name: str, expected: int, count: int, *, more: bool) -> None:
        """A BYTES input's element count against its shape's (``more``: elements go on past
        ``expected``; Triton names the first extra one's count)."""
        if more or count > expected:
            raise StringCountError(
                f"unexpected number of string elements {expected + 1} for inference input "
                f"'{name}' for model '{self.model}', expecting {expected}"
            )
        if count < expected:
            raise StringCountError(
                f"expected {expected} string elements for inference input '{name}' for model "
                f"'{self.model}', got {count}"
            )

    def check_element_count(
        self, name: str, shape: tuple[int, ...], count: int, *, source: str
    ) -> None:
        """The number of elements given one by one (``source``: where, for the message)."""
        expected = math.prod(shape)
        if self.inputs[name].datatype.wire == BYTES:
            self.check_string_count(name, expected, count, more=False)
        if count != expected:
            raise InvalidArgument(
                f"unexpected number of elements {count} in {source} of input '{name}' for "
                f"model '{self.model}', expecting {expected} for shape {list(shape)}"
            )

    # ------------------------------------------------------------------ outputs

    def check_requested(self, names: Iterable[str]) -> list[TensorSpec]:
        """The specs of the outputs a request names, in its order; InvalidArgument for a name
        named twice (Triton's text, checked first, as Triton does when it builds the request)
        or one the model does not have."""
        names = list(names)
        if len(names) > 1 and len(set(names)) != len(names):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise InvalidArgument(f"output '{echo(name)}' already exists in request")
                seen.add(name)
        specs = []
        for name in names:
            spec = self.outputs.get(name)
            if spec is None:
                raise InvalidArgument(
                    f"unexpected inference output '{name}' for model '{self.model}'; "
                    f"its outputs are {list(self.outputs)}"
                )
            specs.append(spec)
        return specs

    def check_output(self, name: str, array: object, batch_size: int | None) -> Array:
        """A model's output array, checked against its spec; a mismatch is the model's bug
        (Internal). ``batch_size``: the request's, when the model batches (None if not)."""
        model, spec = self.model, self.outputs[name]
        if not isinstance(array, np.ndarray):
            raise Internal(
                f"model '{model}' returned output '{name}' as {type(array).__name__}, not a "
                "numpy array"
            )
        datatype = from_numpy(array.dtype)
        if datatype is None or datatype.wire != spec.datatype.wire:
            got = datatype.wire if datatype else str(array.dtype)
            raise Internal(
                f"model '{model}' returned output '{name}' as {got}, but its config declares "
                f"{spec.datatype.wire}"
            )
        expected = spec.dims if batch_size is None else (batch_size, *spec.dims)
        if not shape_fits(array.shape, expected):
            raise Internal(
                f"model '{model}' returned output '{name}' with shape {list(array.shape)}, but "
                f"its config declares {list(expected)} for this request"
            )
        return array


def check_extent(model: str, name: str, shape: tuple[int, ...], datatype: Datatype) -> None:
    """InvalidArgument when a shape's elements could not exist: more than
    :data:`MAX_TENSOR_BYTES` of data (a BYTES element takes at least its 4-byte length), with
    zero extents left out so that a product which overflows int64 is refused even when another
    extent is 0. Checked before anything of the shape's size is allocated."""
    count = math.prod(d for d in shape if d)
    element = datatype.itemsize or 4
    if count * element > MAX_TENSOR_BYTES:
        raise InvalidArgument(
            f"inference input '{name}' for model '{model}' has shape {list(shape)}: "
            f"{count} elements of {datatype.wire} cannot exist (at most {MAX_TENSOR_BYTES} "
            "bytes in one tensor)"
        )


def _datatype_of(model: str, name: str, value: object) -> str:
    """The wire datatype of an in-process input; InvalidArgument when it is no numpy array or
    its dtype is not one of the datatype table's own (byte order included)."""
    what = f"inference input '{name}' for model '{model}'"
    if not isinstance(value, np.ndarray):
        raise InvalidArgument(f"{what} must be a numpy array, not {type(value).__name__}")
    datatype = from_numpy(value.dtype)
    if datatype is None:
        raise InvalidArgument(f"{what} has numpy dtype {value.dtype}, which no datatype has")
    if value.dtype != datatype.dtype:
        raise InvalidArgument(
            f"{what} has numpy dtype {value.dtype}; {datatype.wire} inputs are "
            f"{datatype.dtype} arrays (nothing is converted)"
        )
    return datatype.wire


def _shape_of(value: object) -> tuple[int, ...]:
    assert isinstance(value, np.ndarray)  # checked by _datatype_of first
    return tuple(int(d) for d in value.shape)
