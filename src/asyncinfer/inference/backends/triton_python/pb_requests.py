"""pb_utils' requests, responses and response senders, and BLS (``exec`` / ``async_exec``).

A request a model gets wraps asyncinfer's :class:`~asyncinfer.inference.python_model.Request`
(its inputs are the same arrays, no copy). A request a model builds is a BLS call: ``exec``
and ``async_exec`` run it through the in-process :class:`~asyncinfer.inference.inprocess.
ModelCaller`, so the called model is checked and scheduled exactly as over the network.

The caller and the event loop BLS runs on are bound per model by the adapter (adapter.py):
in a context variable while an execute runs (``asyncio.to_thread`` carries it into the worker
thread) and as the process-wide fallback for threads a model starts itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any

from ....errors import RpcError
from ... import python_model
from ...inprocess import ModelCaller
from .._bls_pipe import PipeCaller
from .._inline import INLINE, await_on_loop, note_wait, suspendable
from .pb_types import (
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_END,
    TRITONSERVER_REQUEST_FLAG_SEQUENCE_START,
    TRITONSERVER_REQUEST_RELEASE_ALL,
    TRITONSERVER_RESPONSE_COMPLETE_FINAL,
    Tensor,
    TritonError,
    TritonModelException,
    unsupported,
)

__all__ = [
    "Bls",
    "InferenceRequest",
    "InferenceResponse",
    "InferenceResponseSender",
    "is_model_ready",
    "load_model",
    "unload_model",
]

#: Request parameters that are fields of a Triton request, not entries of ``parameters()``.
_RESERVED = frozenset(("sequence_id", "sequence_start", "sequence_end", "priority", "timeout"))


@dataclasses.dataclass(frozen=True, slots=True)
class Bls:
    """Where a model's BLS calls go: the server's ModelCaller on its loop, or, in a process
    instance, the pipe to the server (None and None: no BLS, ``reason`` says why)."""

    caller: ModelCaller | None
    loop: asyncio.AbstractEventLoop | None
    reason: str = ""
    pipe: PipeCaller | None = None

    def checked(self, what: str) -> tuple[ModelCaller, asyncio.AbstractEventLoop]:
        if self.caller is None or self.loop is None:
            raise unsupported(what, self.reason or "this model has no in-process model caller")
        if self.loop.is_closed():
            raise unsupported(what, "the server that loaded the model has stopped")
        return self.caller, self.loop


_NO_BLS = Bls(None, None, "it was called outside a model loaded by asyncinfer")
CURRENT: contextvars.ContextVar[Bls | None] = contextvars.ContextVar("pb_utils_bls", default=None)
_fallback = _NO_BLS
_fallback_lock = threading.Lock()


def set_fallback(bls: Bls) -> None:
    """The binding threads a model started itself see (the last model initialized)."""
    global _fallback
    with _fallback_lock:
        _fallback = bls


def clear_fallback(bls: Bls) -> None:
    """A model that set the fallback is finalized: threads it left behind get no binding."""
    global _fallback
    with _fallback_lock:
        if _fallback is bls:
            _fallback = _NO_BLS


def _bls() -> Bls:
    return CURRENT.get() or _fallback


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _json(parameters: Mapping[str, Any] | str | None, what: str) -> dict[str, Any]:
    if parameters is None:
        return {}
    if isinstance(parameters, str):
        try:
            parsed = json.loads(parameters) if parameters else {}
        except ValueError as exc:
            raise TritonModelException(f"{what} parameters are not valid JSON: {exc}") from None
        parameters = parsed
    if not isinstance(parameters, Mapping):
        raise TritonModelException(f"{what} parameters must be a dict or a JSON object string")
    for key, value in parameters.items():
        if not isinstance(key, str) or not isinstance(value, bool | int | float | str):
            raise TritonModelException(
                f"{what} parameter {key!r} must map a str to a bool, int, float or str, got "
                f"{type(value).__name__}"
            )
    return dict(parameters)


class InferenceResponse:
    """The outputs of one request, or the TritonError that failed it, and its parameters."""

    __slots__ = ("_error", "_outputs", "_parameters")

    def __init__(
        self,
        output_tensors: Sequence[Tensor] | None = None,
        error: TritonError | None = None,
        parameters: Mapping[str, Any] | str | None = None,
    ) -> None:
        if error is not None and not isinstance(error, TritonError):
            raise TritonModelException(
                f"InferenceResponse error must be a pb_utils.TritonError, not "
                f"{type(error).__name__}"
            )
        self._outputs = _tensors(output_tensors or (), "InferenceResponse output_tensors")
        self._error = error
        self._parameters = _json(parameters, "InferenceResponse")

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def parameters(self) -> str:
        return json.dumps(self._parameters)

    def to_model(self) -> python_model.Response:
        """asyncinfer's Response of this one."""
        if self._error is not None:
            error = python_model.ModelError(self._error.message(), self._error.status())
            return python_model.Response(error=error)
        return python_model.Response(
            [tensor.to_model() for tensor in self._outputs], parameters=self._parameters
        )


class InferenceResponseSender:
    """Sends a decoupled request's responses: ``send(response, flags=...)``, any number of
    times, the last with ``flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL``."""

    __slots__ = ("_request", "_sender")

    def __init__(self, sender: python_model.ResponseSender, request: python_model.Request):
        self._sender = sender
        self._request = request

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        if self._sender.closed:
            raise TritonModelException(
                "Unable to send response. Response sender has been closed (the "
                "TRITONSERVER_RESPONSE_COMPLETE_FINAL flag was already sent)."
            )
        if response is not None and not isinstance(response, InferenceResponse):
            raise TritonModelException(
                f"send() takes a pb_utils.InferenceResponse, not {type(response).__name__}"
            )
        final = bool(flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        if response is None and not final:
            raise TritonModelException(
                "send() needs a response, flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL, or both"
            )
        self._sender.send(None if response is None else response.to_model(), final=final)

    def is_cancelled(self) -> bool:
        return self._request.cancelled()


class InferenceRequest:
    """A request: one a model's execute gets, or one a model builds to call another (BLS)."""

    __slots__ = (
        "_correlation_id",
        "_flags",
        "_inputs",
        "_model",
        "_model_name",
        "_model_version",
        "_parameters",
        "_request_id",
        "_requested",
        "_timeout",
    )

    def __init__(
        self,
        model_name: str,
        inputs: Sequence[Tensor] = (),
        requested_output_names: Sequence[str] = (),
        *,
        model_version: int = -1,
        request_id: str = "",
        correlation_id: int | str = 0,
        flags: int = 0,
        timeout: int = 0,
        parameters: Mapping[str, Any] | str | None = None,
        preferred_memory: Any = None,
        trace: Any = None,
    ) -> None:
        if trace is not None:
            raise unsupported("InferenceRequest(trace=...)", "BLS requests are not traced")
        del preferred_memory  # everything is in CPU memory here: any preference is met
        self._model_name = model_name
        self._model_version = model_version
        self._inputs: list[Tensor] | None = _tensors(inputs, "InferenceRequest inputs")
        self._requested: list[str] | None = list(requested_output_names)
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._flags = flags
        self._timeout = timeout
        self._parameters = _json(parameters, "InferenceRequest")
        self._model: python_model.Request | None = None

    @classmethod
    def of_model(cls, request: python_model.Request, model_name: str) -> InferenceRequest:
        """The pb_utils view of a request asyncinfer hands a model (no copy of its inputs);
        its inputs, parameters and flags are read from ``request`` when first asked for."""
        self = cls.__new__(cls)
        self._model_name = model_name
        self._model_version = -1
        self._inputs = None
        self._requested = None  # not read from the request yet (_read)
        self._request_id = request.id
        self._model = request
        return self

    def _read(self) -> None:
        """Fill in what a model's request says besides its inputs (once, on first use)."""
        request = self._model
        assert request is not None
        parameters = request.parameters
        self._correlation_id = parameters.get("sequence_id", 0)
        self._flags = (
            TRITONSERVER_REQUEST_FLAG_SEQUENCE_START if parameters.get("sequence_start") else 0
        ) | (TRITONSERVER_REQUEST_FLAG_SEQUENCE_END if parameters.get("sequence_end") else 0)
        self._timeout = parameters.get("timeout", 0)
        self._parameters = {
            k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
            for k, v in parameters.items()
            if k not in _RESERVED
        }
        self._requested = list(request.requested_output_names)

    # ------------------------------------------------------------------ what a model reads

    def inputs(self) -> list[Tensor]:
        if self._inputs is None:
            assert self._model is not None
            self._inputs = [Tensor._of(t.name, t.as_numpy()) for t in self._model.inputs()]
        return self._inputs

    def get_input_tensor_by_name(self, name: str) -> Tensor | None:
        for tensor in self.inputs():
            if tensor.name() == name:
                return tensor
        return None

    def requested_output_names(self) -> list[str]:
        if self._requested is None:
            self._read()
        assert self._requested is not None
        return self._requested

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int | str:
        if self._requested is None:
            self._read()
        return self._correlation_id

    def flags(self) -> int:
        if self._requested is None:
            self._read()
        return self._flags

    def timeout(self) -> int:
        if self._requested is None:
            self._read()
        return int(self._timeout)

    def parameters(self) -> str:
        if self._requested is None:
            self._read()
        return json.dumps(self._parameters)

    def model_name(self) -> str:
        return self._model_name

    def is_cancelled(self) -> bool:
        return self._model is not None and self._model.cancelled()

    def get_response_sender(self) -> InferenceResponseSender:
        if self._model is None:
            raise TritonModelException("a BLS request has no response sender")
        try:
            sender = self._model.response_sender()
        except RuntimeError as exc:
            raise TritonModelException(str(exc)) from None
        return InferenceResponseSender(sender, self._model)

    def set_release_flags(self, flags: int) -> None:
        if flags != TRITONSERVER_REQUEST_RELEASE_ALL:
            raise unsupported(
                "InferenceRequest.set_release_flags(TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)",
                "requests are not rescheduled",
            )

    # ------------------------------------------------------------------ BLS

    def exec(self, decoupled: bool = False) -> Any:
        """Run this request on its model and wait: an InferenceResponse (an iterator of them
        when ``decoupled``). Called from a ``def execute``: in a thread, or on the loop in the
        greenlet such an execute runs in there (_inline.py), which waits without blocking it."""
        bls = _bls()
        if bls.pipe is not None:
            piped = self._piped(bls.pipe, decoupled)
            return iter(piped) if decoupled else piped
        caller, loop = bls.checked("InferenceRequest.exec()")
        if _on_loop(loop):
            if suspendable():  # a def execute on the loop, in its greenlet: it waits there
                try:
                    result = await_on_loop(self._call(caller, decoupled))
                except asyncio.CancelledError:  # the execute's caller has gone
                    result = self._cancelled(decoupled)
                return iter(result) if decoupled else result
            policy = INLINE.get()
            if policy is not None:  # a def execute the server ran on the loop: never again
                policy.forbid("it called InferenceRequest.exec()")
                raise TritonModelException(
                    "InferenceRequest.exec() was called by a def execute that ran on the event "
                    "loop, where it would wait forever; this model's executes run in worker "
                    "threads from now on (set parameter sync_execute: 'thread' to start so)"
                )
            raise TritonModelException(
                "InferenceRequest.exec() would block the event loop that runs the call; in "
                "an async def execute, use 'await request.async_exec()'"
            )
        result = _wait_on(loop, self._call(caller, decoupled))
        return iter(result) if decoupled else result

    async def async_exec(self, decoupled: bool = False) -> Any:
        """``await``-able exec: an InferenceResponse (a list of them when ``decoupled``). In a
        process instance the call blocks the instance until it is answered."""
        bls = _bls()
        if bls.pipe is not None:
            return self._piped(bls.pipe, decoupled)
        caller, loop = bls.checked("InferenceRequest.async_exec()")
        if _on_loop(loop):
            return await self._call(caller, decoupled)
        future = asyncio.run_coroutine_threadsafe(self._call(caller, decoupled), loop)
        return await asyncio.wrap_future(future)

    def _cancelled(self, decoupled: bool) -> Any:
        """The answer of a BLS call made for a request whose caller has gone: not made."""
        error = TritonError(
            f"BLS request to model '{self._model_name}' was cancelled: the request that made "
            "it was cancelled (its caller went away or its deadline passed)",
            TritonError.CANCELLED,
        )
        failed = InferenceResponse(error=error)
        return [failed] if decoupled else failed

    def _version(self) -> str:
        return "" if self._model_version < 0 else str(self._model_version)

    def _not_ready(self) -> TritonModelException:
        version = self._version()
        shown = f"'{self._model_name}'" + (f" version {version}" if version else "")
        return TritonModelException(
            f"BLS request to model {shown} failed: the model is unknown or not ready"
        )

    def _call_arguments(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._requested is None:
            self._read()
        inputs = {tensor.name(): tensor.as_numpy() for tensor in self._inputs or ()}
        kwargs: dict[str, Any] = {
            "version": self._version(),
            "outputs": self._requested,
            "parameters": self._bls_parameters(),
        }
        return inputs, kwargs

    def _piped(self, pipe: PipeCaller, decoupled: bool) -> Any:
        """A BLS call from a process instance, through its pipe to the server."""
        if not pipe.is_ready(self._model_name, self._version()):
            raise self._not_ready()
        inputs, kwargs = self._call_arguments()
        try:
            results = pipe.call(self._model_name, inputs, decoupled=decoupled, **kwargs)
        except RpcError as exc:
            failed = InferenceResponse(error=TritonError.of_rpc_error(exc))
            return [failed] if decoupled else failed
        responses = [_response(arrays) for arrays in results]
        return responses if decoupled else responses[0]

    async def _call(self, caller: ModelCaller, decoupled: bool) -> Any:
        name = self._model_name
        if not caller.is_ready(name, self._version()):
            raise self._not_ready()
        inputs, kwargs = self._call_arguments()
        if not decoupled:
            try:
                arrays = await caller.infer(name, inputs, **kwargs)
            except RpcError as exc:
                return InferenceResponse(error=TritonError.of_rpc_error(exc))
            return _response(arrays)
        responses = []
        try:
            async for arrays in caller.stream(name, inputs, **kwargs):
                responses.append(_response(arrays))
        except RpcError as exc:
            responses.append(InferenceResponse(error=TritonError.of_rpc_error(exc)))
        return responses

    def _bls_parameters(self) -> dict[str, Any]:
        parameters = dict(self._parameters)
        if self._correlation_id:
            parameters["sequence_id"] = self._correlation_id
        if self._flags & TRITONSERVER_REQUEST_FLAG_SEQUENCE_START:
            parameters["sequence_start"] = True
        if self._flags & TRITONSERVER_REQUEST_FLAG_SEQUENCE_END:
            parameters["sequence_end"] = True
        if self._timeout:
            parameters["timeout"] = int(self._timeout)
        return parameters


def _wait_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any]) -> Any:
    """Run ``work`` on ``loop`` (from another thread) and wait for its result: what
    ``run_coroutine_threadsafe(...).result()`` does, with one task and one lock instead of a
    concurrent Future, its condition and the callbacks that chain them."""
    done = threading.Lock()
    done.acquire()
    tasks: list[asyncio.Task[Any]] = []

    def start() -> None:
        task = loop.create_task(work)
        tasks.append(task)
        task.add_done_callback(lambda _: done.release())

    try:
        loop.call_soon_threadsafe(start)  # in a copy of this thread's context, as a Task
    except RuntimeError:  # closed in between
        work.close()
        raise unsupported(
            "InferenceRequest.exec()", "the server that loaded the model has stopped"
        ) from None
    waiting = time.perf_counter()
    done.acquire()
    note_wait(time.perf_counter() - waiting)  # the loop's time, not the execute's
    return tasks[0].result()


def _response(arrays: Mapping[str, Any]) -> InferenceResponse:
    return InferenceResponse([Tensor._of(name, array) for name, array in arrays.items()])


def is_model_ready(model_name: str, model_version: str = "") -> bool:
    """Whether the server has ``model_name`` (that version) loaded and ready."""
    bls = _bls()
    if bls.pipe is not None:
        return bls.pipe.is_ready(model_name, model_version)
    caller, _ = bls.checked("is_model_ready()")
    return caller.is_ready(model_name, model_version)


def load_model(model_name: str, config: str = "", files: Any = None) -> None:
    raise unsupported(
        f"load_model('{model_name}')",
        "load models through the repository API (RepositoryModelLoad) or the CLI instead",
    )


def unload_model(model_name: str, unload_dependents: bool = False) -> None:
    raise unsupported(
        f"unload_model('{model_name}')",
        "unload models through the repository API (RepositoryModelUnload) instead",
    )


def _tensors(values: Iterable[Any], what: str) -> list[Tensor]:
    """``values`` as a list, each checked to be a pb_utils.Tensor; TritonModelException
    naming ``what`` and the first other type otherwise."""
    tensors = list(values)
    for tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise TritonModelException(
                f"{what} must be pb_utils.Tensor objects, got {type(tensor).__name__}"
            )
    return tensors
