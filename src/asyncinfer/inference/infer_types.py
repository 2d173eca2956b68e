"""What a front end hands the data plane and what it gets back: plain Python, no protobuf.

A front end (gRPC, HTTP, an in-process call, an ensemble step, warmup) decodes its wire format
into an :class:`InferRequest` and encodes each :class:`InferResponse` it gets back; everything
between, checks included, is the data plane's (:class:`~asyncinfer.inference.model.LoadedModel`).

- Inputs are declared (name, wire datatype, shape) with their data in the form the wire gave
  it: raw little-endian bytes (gRPC ``raw_input_contents``, HTTP binary data), elements one by
  one (:class:`ElementValues`: gRPC typed contents, HTTP JSON ``data``), a span of registered
  shared memory (:class:`~asyncinfer.inference.shared_memory.ShmSpan`), or a numpy array (in
  process). The data plane checks the declarations against the model before it reads any data,
  then reads each input and checks its byte size.
- Requested outputs carry their per-output options: ``class_count`` (classification) and
  ``shm`` (placement in shared memory). None requested: every output, in config order.
- Parameters are plain values (bool, int, float, str, bytes) under Triton's names:
  ``sequence_id``, ``sequence_start``, ``sequence_end``, ``priority``, ``timeout`` (µs) and any
  the model reads itself.
- ``deadline`` (``time.monotonic()`` seconds) bounds the whole request; ``cancellation`` is
  marked when its caller goes away; ``timing`` records Triton's timestamps. Those three are the
  seams tracing and Triton's python models (``is_cancelled()``) hook into.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy.typing as npt

from ..datatypes import as_array, from_numpy
from ..errors import RpcError
from .shared_memory import RequestShm, ShmSpan
from .statistics import RequestTiming

__all__ = [
    "Cancellation",
    "DeclarationKey",
    "ElementValues",
    "InferInput",
    "InferRequest",
    "InferResponse",
    "InputData",
    "OutputTensor",
    "RequestedOutput",
]

Array = npt.NDArray[Any]

#: A request's declaration: ((name, datatype, shape) per input, in order), (requested output
#: names). The data plane plans each declaration once (plans.py).
DeclarationKey = tuple[tuple[tuple[str, str, tuple[int, ...]], ...], tuple[str, ...]]


# Not frozen: these are made per request, and a frozen dataclass costs several times as much
# to construct.


@dataclasses.dataclass(slots=True)
class ElementValues:
    """An input's elements given one by one, flat and row-major; ``source`` names where they
    came from in the wire format (``int_contents``, ``data``), for error messages."""

    values: Sequence[Any]
    source: str


#: An input's data as a front end received it.
InputData = bytes | memoryview | ElementValues | ShmSpan | Array


@dataclasses.dataclass(slots=True)
class InferInput:
    """One input as a request declares it, and its data."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: InputData

    @classmethod
    def of(cls, name: str, value: npt.ArrayLike) -> InferInput:
        """An in-process input: an array (lists of bytes or str become BYTES object arrays);
        its datatype and shape are the array's."""
        array = as_array(value)
        datatype = from_numpy(array.dtype)
        wire = datatype.wire if datatype is not None else str(array.dtype)
        return cls(name, wire, tuple(int(d) for d in array.shape), array)


@dataclasses.dataclass(slots=True)
class RequestedOutput:
    """An output a request asks for, with its options: the top ``class_count`` classes
    instead of the tensor (None: the tensor; the data plane checks it is >= 1), and the shared
    memory it is written to."""

    name: str
    class_count: int | None = None
    shm: ShmSpan | None = None


class Cancellation:
    """Whether the caller of a request has gone away; the data plane marks it when the request
    is cancelled, and a model running it can look (in process), or is told through
    ``add_callback`` (a process instance, which cannot read this object)."""

    __slots__ = ("_callbacks", "_cancelled")

    def __init__(self) -> None:
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Mark it; the callbacks run now, once, on the canceller's thread."""
        if self._cancelled:
            return
        self._cancelled = True
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when this is cancelled: at once if it already is. A callback
        must not raise (it runs inside whoever cancels)."""
        if self._cancelled:
            callback()
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)


@dataclasses.dataclass(slots=True)
class InferRequest:
    """One inference request to a model version, decoded from whatever wire it came over."""

    inputs: Sequence[InferInput]
    outputs: Sequence[RequestedOutput] = ()
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    id: str = ""
    #: ``time.monotonic()`` seconds by which the request must be answered (None: no limit).
    deadline: float | None = None
    #: The leases on shared memory its inputs and outputs use (None: the request uses none).
    shm: RequestShm | None = None
    timing: RequestTiming = dataclasses.field(default_factory=RequestTiming)
    cancellation: Cancellation = dataclasses.field(default_factory=Cancellation)
    #: The transport's own deadline (``time.monotonic()`` seconds) for a transport that
    #: cancels the call itself then (gRPC): no timer is armed for it, but a request past it
    #: is never started, and a scheduler drops it instead of running it.
    expires: float | None = None
    #: Its declaration's key, when the front end knows it already (the gRPC decoder's, for an
    #: envelope it decoded before); None: the data plane works it out.
    declaration: DeclarationKey | None = None

    @classmethod
    def of_arrays(
        cls,
        inputs: Mapping[str, npt.ArrayLike],
        *,
        outputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        deadline: float | None = None,
    ) -> InferRequest:
        """An in-process request: arrays by input name, the outputs wanted by name (none: all)."""
        return cls(
            [InferInput.of(name, value) for name, value in inputs.items()],
            [RequestedOutput(name) for name in outputs],
            parameters if parameters is not None else {},
            id,
            deadline,
        )


@dataclasses.dataclass(slots=True)
class OutputTensor:
    """One output of a response: its name, wire datatype and array (for a classified output,
    BYTES strings). ``shm``: the span it was written to; a front end sends no data for it."""

    name: str
    datatype: str
    data: Array
    shm: ShmSpan | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape


@dataclasses.dataclass(slots=True)
class InferResponse:
    """One response to a request: its outputs, in request order (or config order when the
    request named none), and response parameters.

    ``final`` is False for every response but the last of a decoupled model's stream.
    ``error`` is set only on responses of a stream (``LoadedModel.stream``) that failed: a
    stream goes on after one, while ``LoadedModel.infer`` raises instead.
    """

    model_name: str
    model_version: str
    id: str
    outputs: list[OutputTensor] = dataclasses.field(default_factory=list)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    final: bool = True
    error: RpcError | None = None

    def arrays(self) -> dict[str, Array]:
        """The outputs as arrays by name (what in-process callers want)."""
        return {output.name: output.data for output in self.outputs}
