"""The data plane's input stage: a request's inputs checked against the model's signature, then
read into the arrays its backend gets.

Every front end's inputs come through here. What a request declares (names, datatypes, shapes)
is checked before a byte is read, in Triton's order; each input's data is then read from what
the wire gave: raw bytes become a read-only view (no copy), BYTES elements are split at their
length prefixes, elements given one by one are range-checked and converted, shared memory is
leased and viewed, and an in-process array is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..datatypes import BYTES, DATATYPES, Datatype, object_array
from ..errors import InvalidArgument, StringCountError
from ..signature import Signature
from .infer_types import ElementValues, InferInput, InferRequest
from .shared_memory import RequestShm, ShmSpan

if TYPE_CHECKING:
    from .plans import RawRead

__all__ = ["read_inputs", "read_planned"]

Array = npt.NDArray[Any]


def read_inputs(request: InferRequest, sig: Signature) -> tuple[dict[str, Array], int]:
    """The request's inputs as the model's arrays, checked; and the request's batch size.

    A BYTES input whose element count is wrong does not stop the others being read: Triton
    checks every input and reports the last such one, and so does this.
    """
    batch_size = sig.check_inputs(request.inputs)
    return read_planned(request, sig, [None] * len(request.inputs)), batch_size


def read_planned(
    request: InferRequest, sig: Signature, reads: Sequence[RawRead | None]
) -> dict[str, Array]:
    """The inputs of a request whose declaration was checked (its plan's ``reads``, one per
    input): raw bytes of the planned size become views at once; any other input is read as
    :func:`read_inputs` reads it, with the same checks and texts."""
    arrays: dict[str, Array] = {}
    miscounted: StringCountError | None = None
    for tensor, read in zip(request.inputs, reads, strict=True):
        data = tensor.data
        if read is not None:
            if type(data) is ElementValues:
                # Elements given one by one (JSON ``data``): the usual list of exactly the
                # planned count, all of the dtype's kind, is converted in one call.
                values = data.values
                array = (
                    _plain_values(values, read.dtype)
                    if len(values) * read.dtype.itemsize == read.nbytes
                    else None
                )
                if array is not None:
                    arrays[tensor.name] = array.reshape(read.shape)
                    continue
            elif (
                len(data) == read.nbytes
                if type(data) is bytes
                else _planned_size(data, read.nbytes)
            ):
                # A read-only view over the received bytes, as _from_raw makes (in one call:
                # its size was just checked).
                arrays[tensor.name] = _view(read.shape, read.dtype, data)  # type: ignore[arg-type]
                continue
        try:
            arrays[tensor.name] = _read(tensor, sig, request.shm)
        except StringCountError as exc:
            miscounted = exc
    if miscounted is not None:
        raise miscounted
    return arrays


_view = np.ndarray  # (shape, dtype, buffer): frombuffer(...).reshape(shape) for the right size


def _planned_size(data: object, nbytes: int) -> bool:
    """Whether ``data`` is raw bytes (bytes, or a contiguous view of the received message) of
    exactly ``nbytes``."""
    kind = type(data)
    if kind is bytes:
        return len(data) == nbytes  # type: ignore[arg-type]
    return kind is memoryview and data.nbytes == nbytes and data.c_contiguous  # type: ignore[attr-defined]


def _read(tensor: InferInput, sig: Signature, shm: RequestShm | None) -> Array:
    data = tensor.data
    if isinstance(data, bytes):  # the usual request: raw bytes off the wire
        return _from_raw(data, len(data), tensor, sig)
    if isinstance(data, np.ndarray):
        return data  # in process: the checks above read its datatype and shape
    if isinstance(data, memoryview):
        return _from_raw(data, data.nbytes, tensor, sig)
    what = f"input '{tensor.name}' for model '{sig.model}'"
    if isinstance(data, ShmSpan):
        return _from_shm(data, tensor, sig, shm, what)
    return _from_values(data, tensor, sig, what)


def _from_raw(
    payload: bytes | memoryview, nbytes: int, tensor: InferInput, sig: Signature
) -> Array:
    datatype, shape = sig.inputs[tensor.name].datatype, tensor.shape
    if datatype.wire == BYTES:
        return sig.read_bytes(tensor.name, shape, payload)
    sig.check_byte_size(tensor.name, shape, nbytes)
    # A read-only view over the received bytes: the request owns the buffer and lives until
    # the model returns, so no copy is needed.
    return np.frombuffer(payload, dtype=datatype.dtype).reshape(shape)


def _from_shm(
    span: ShmSpan, tensor: InferInput, sig: Signature, shm: RequestShm | None, what: str
) -> Array:
    """An input in shared memory, checked in Triton's order: the region and the span first
    (leasing it), then the byte size against the shape, then the data read."""
    if shm is None:
        raise InvalidArgument(
            f"{what} refers to shared memory region '{span.region}', but shared memory is "
            "not available on this call"
        )
    lease = shm.lease(span)
    datatype, shape = sig.inputs[tensor.name].datatype, tensor.shape
    if datatype.wire == BYTES:
        return sig.read_bytes(tensor.name, shape, shm.read(lease))
    sig.check_shm_byte_size(tensor.name, shape, span.byte_size)
    array = np.frombuffer(shm.read(lease), datatype.dtype).reshape(shape)
    array.flags.writeable = False  # the client's memory (a copy of it): models get it read-only
    return array


def _from_values(values: ElementValues, tensor: InferInput, sig: Signature, what: str) -> Array:
    datatype, shape = sig.inputs[tensor.name].datatype, tensor.shape
    items = values.values
    sig.check_element_count(tensor.name, shape, len(items), source=values.source)
    if datatype.wire == BYTES:
        elements = list(items)  # one C-level copy of the references (millions may come)
        if not all(type(item) is bytes for item in elements):
            elements = [item.encode() if isinstance(item, str) else bytes(item) for item in items]
        return object_array(elements).reshape(shape)
    return _numbers(items, datatype, f"{values.source} of {what}").reshape(shape)


# Each integer dtype's range, made once (np.iinfo costs microseconds a call).
_RANGES = {
    dt.dtype: (int(np.iinfo(dt.dtype).min), int(np.iinfo(dt.dtype).max))
    for dt in DATATYPES.values()
    if dt.dtype.kind in "iu"
}


#: Per dtype kind, the one Python type whose values numpy converts to that kind exactly as the
#: checked path below does (ints range-checked by numpy 2 itself; numpy 1 wrapped them around).
_PLAIN_KIND: dict[str, frozenset[type]] = {"f": frozenset((float,)), "b": frozenset((bool,))}
if int(np.__version__.split(".", 1)[0]) >= 2:
    _PLAIN_KIND |= {"i": frozenset((int,)), "u": frozenset((int,))}


def _plain_values(items: Any, dtype: np.dtype[Any]) -> Array | None:
    """``items`` as an array of ``dtype`` in one numpy call when they are the usual kind: a
    list of Python ints for an integer dtype (in its range), floats for a float one, bools for
    BOOL. None for anything else, which the checked path reads (and words any error of)."""
    kind = _PLAIN_KIND.get(dtype.kind)
    if kind is None or type(items) is not list or not kind.issuperset(map(type, items)):
        return None
    try:
        return np.array(items, dtype)
    except OverflowError:  # an int past the dtype's range
        return None


def _numbers(items: Any, datatype: Datatype, what: str) -> Array:
    """``items`` as an array of ``datatype``; InvalidArgument when one is out of its range or
    not a number of its kind."""
    plain = _plain_values(items, datatype.dtype)
    if plain is not None:
        return plain
    dtype = datatype.dtype
    try:
        wide = np.array(items, dtype=np.uint64 if datatype.wire == "UINT64" else None)
        if wide.size and wide.dtype.kind not in ("iub" if dtype.kind in "iu" else "iubf"):
            raise TypeError(wide.dtype)  # strings, objects: not numbers (nor floats for ints)
        if dtype.kind in "iu" and wide.size:
            low, high = _RANGES[dtype]
            if int(wide.min()) < low or int(wide.max()) > high:
                raise InvalidArgument(f"{what} holds values outside the range of {datatype.wire}")
        return wide.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"{what} holds values that are not {datatype.wire}") from None
