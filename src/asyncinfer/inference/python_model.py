"""The Python model API: what a model.py works with (Request, Response, Tensor, ModelError).

A model is a class named ``Model`` in ``<repository>/<name>/<version>/model.py``::

    import numpy as np
    from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor

    class Model:
        def initialize(self, args: dict[str, str]) -> None:   # optional
            self.config = json.loads(args["model_config"])

        async def execute(self, requests: list[Request]) -> list[Response]:
            responses = []
            for request in requests:
                a = request.input("INPUT0").as_numpy()
                responses.append(Response([Tensor("OUTPUT0", a + 1)]))
            return responses

        def finalize(self) -> None:                            # optional
            ...

``execute`` gets a list of requests and returns one Response per request, in order (with
``dynamic_batching`` in the config, the list is the batch the batcher formed: requests whose
non-batch shapes match, each with its own batch dimension). A Response carrying
``error=ModelError("...")`` fails that request only (INTERNAL; ``ModelInputError``, for a
request whose input the model cannot use, is INVALID_ARGUMENT). ``async def execute`` runs on the
server's event loop (right for quick numpy work or awaiting other services); a plain ``def
execute`` runs in a worker thread so that it cannot stall the loop. Input arrays may be
read-only views over the received message: copy before writing into them.

A decoupled model (``model_transaction_policy { decoupled: true }``) answers through
``request.response_sender()``: ``send(response)`` any number of times, then
``send(final=True)`` (or ``send(response, final=True)``), from execute or later from any thread;
its execute returns None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgument, RpcError

__all__ = ["ModelError", "ModelInputError", "Request", "Response", "ResponseSender", "Tensor"]


class ModelError(Exception):
    """A per-request failure a model reports; the client sees ``message`` with ``status``
    (an :class:`~asyncinfer.errors.RpcError` class; None: INTERNAL)."""

    def __init__(self, message: str, status: type[RpcError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ModelInputError(ModelError):
    """A request whose input the model cannot use (a client's mistake): INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=InvalidArgument)


class Tensor:
    """A named numpy array. BYTES tensors are object arrays of ``bytes``."""

    __slots__ = ("_array", "name")

    def __init__(self, name: str, array: npt.ArrayLike) -> None:
        self.name = name
        self._array = np.asarray(array)

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, shape={self._array.shape}, dtype={self._array.dtype})"


_new_tensor = Tensor.__new__


class Request:
    """One inference request as a model sees it: inputs, requested outputs, parameters, id."""

    __slots__ = (
        "_cancellation",
        "_inputs",
        "_sender",
        "id",
        "parameters",
        "requested_output_names",
    )

    def __init__(
        self,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        requested_output_names: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
    ) -> None:
        self._inputs = {name: Tensor(name, array) for name, array in inputs.items()}
        #: Names of the outputs the client asked for; all outputs are computed either way.
        self.requested_output_names = tuple(requested_output_names)
        self.parameters: Mapping[str, Any] = dict(parameters or {})
        self.id = id
        self._sender: ResponseSender | None = None
        # The data plane's Cancellation of the call (infer_types.Cancellation), when it has one.
        self._cancellation: Any = None

    @classmethod
    def _of_arrays(
        cls,
        arrays: Mapping[str, npt.NDArray[Any]],
        requested_output_names: tuple[str, ...],
        parameters: Mapping[str, Any],
        id: str,
    ) -> Self:
        """For the server only: ``__init__``'s request from the data plane's checked arrays,
        set field by field (every request's path: no keyword matching, no ``np.asarray``)."""
        request = cls.__new__(cls)
        inputs = request._inputs = {}
        for name, array in arrays.items():
            tensor = _new_tensor(Tensor)
            tensor.name = name
            # __init__'s np.asarray, skipped for a plain ndarray (what the data plane reads)
            tensor._array = array if type(array) is np.ndarray else np.asarray(array)
            inputs[name] = tensor
        request.requested_output_names = requested_output_names
        request.parameters = dict(parameters) if parameters else {}
        request.id = id
        request._sender = None
        request._cancellation = None
        return request

    def cancelled(self) -> bool:
        """Whether the caller of this request has gone away (cancelled, or past its
        deadline): a long execute can look and stop early. Safe from any thread."""
        return self._cancellation is not None and bool(self._cancellation.cancelled)

    def input(self, name: str) -> Tensor | None:
        """The input called ``name``, or None when the request does not carry it (optional)."""
        return self._inputs.get(name)

    def inputs(self) -> list[Tensor]:
        return list(self._inputs.values())

    def response_sender(self) -> ResponseSender:
        """The sender of this request's responses; only requests to decoupled models have one."""
        if self._sender is None:
            raise RuntimeError(
                f"request '{self.id}' has no response sender: only decoupled models "
                "(model_transaction_policy { decoupled: true }) send their own responses"
            )
        return self._sender

    def _set_input(self, name: str, array: npt.NDArray[Any]) -> None:
        # For the server only: control inputs filled in by the sequence batcher.
        self._inputs[name] = Tensor(name, array)

    def _attach_sender(self, sender: ResponseSender) -> None:
        self._sender = sender


class Response:
    """The outputs for one request, or the error that failed it."""

    __slots__ = ("error", "output_tensors", "parameters")

    def __init__(
        self,
        output_tensors: Iterable[Tensor] = (),
        error: ModelError | None = None,
        *,
        parameters: Mapping[str, bool | int | float | str] | None = None,
    ) -> None:
        self.output_tensors = list(output_tensors)
        self.error = error
        #: Response parameters the client gets (gRPC ``parameters`` of the response).
        self.parameters: Mapping[str, bool | int | float | str] = parameters or {}

    def outputs(self) -> dict[str, npt.NDArray[Any]]:
        return {tensor.name: tensor.as_numpy() for tensor in self.output_tensors}


#: What a ResponseSender queues: a response (None for a flags-only final) and the final flag.
Sent = tuple[Response | None, bool]


class ResponseSender:
    """Sends the responses of one request to a decoupled model, from any thread.

    ``send(response)`` sends one response; ``send(response, final=True)`` sends the last one;
    ``send(final=True)`` ends the request without a further response. Nothing may be sent
    after the final flag. A decoupled model's ``execute`` returns None (or a list of None); its
    responses go through the senders, during execute or later from a thread of its own.
    """

    __slots__ = ("_closed", "_loop", "_queue", "request_id")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Sent], request_id: str = ""
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._closed = False
        self.request_id = request_id

    @property
    def closed(self) -> bool:
        """True once the final flag was sent."""
        return self._closed

    def send(self, response: Response | None = None, *, final: bool = False) -> None:
        if self._closed:
            raise RuntimeError(
                f"the response sender of request '{self.request_id}' is closed: the final "
                "flag was already sent"
            )
        if response is None and not final:
            raise ValueError("send() needs a response, final=True, or both")
        if response is not None and not isinstance(response, Response):
            raise TypeError(f"send() takes a Response, not {type(response).__name__}")
        self._closed = final
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._queue.put_nowait((response, final))
        else:
            # From a model's own thread: the queue belongs to the loop, so hand it over.
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (response, final))
