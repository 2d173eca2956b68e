"""In-process model calls (BLS) from process instances: through the instance's pipe and arena to
the server process, whose ModelCaller runs them on the data plane like any call.

A process instance's ``args["models"]`` is a :class:`PipeCaller` (the ModelCaller's surface:
``is_ready``, ``infer``, ``stream``). A call writes its inputs into the output half of the
instance's arena (free while its execute runs: outputs are written after it returns), sends a
small control message on the pipe, and waits for the answer; the server copies the inputs out,
runs the call, writes the outputs at the same place, and answers with their metas. Calls are
one at a time per instance (a lock): the pipe carries one exchange at a time.

    instance -> server   ("bls_ready", (model, version))
                         ("bls", (model, version, outputs, parameters, decoupled, [TensorMeta]))
    server -> instance   ("bls_done", ready: bool)
                         ("bls_done", (error class name | None, error message, [[TensorMeta]]))
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy.typing as npt

from ... import errors
from ...datatypes import as_array
from ...errors import NotFound, ResourceExhausted, RpcError, Unavailable
from ..inprocess import ModelCaller
from ._arena import Arena, ArenaFull, TensorMeta, read_tensors, write_tensors

__all__ = ["BLS_KINDS", "PipeCaller", "answer_bls"]

Array = npt.NDArray[Any]
BLS_KINDS = ("bls", "bls_ready")


class PipeCaller:
    """The ModelCaller of a process instance: each call goes to the server process."""

    def __init__(self, connection: Connection, arena: Arena) -> None:
        self._connection = connection
        self._arena = arena
        self._lock = threading.Lock()

    def is_ready(self, model_name: str, version: str = "") -> bool:
        return bool(self._exchange(("bls_ready", (model_name, version))))

    def call(
        self,
        model_name: str,
        inputs: Mapping[str, npt.ArrayLike],
        *,
        version: str = "",
        outputs: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        decoupled: bool = False,
    ) -> list[dict[str, Array]]:
        """The outputs of every response (one unless ``decoupled``); the RpcError that
        failed the call otherwise, raised after the responses before it are lost."""
        arrays = {name: as_array(value) for name, value in inputs.items()}
        with self._lock:
            try:
                metas, _ = write_tensors(self._arena, self._arena.half, self._arena.size, arrays)
            except ArenaFull as exc:
                raise ResourceExhausted(_full("inputs", model_name, exc)) from None
            request = (model_name, version, list(outputs), dict(parameters or {}), decoupled, metas)
            error_class, message, responses = self._exchange_locked(("bls", request))
            results = [read_tensors(self._arena, tensors, copy=True) for tensors in responses]
        if error_class is not None:
            found = getattr(errors, error_class, None)
            status = found if isinstance(found, type) and issubclass(found, RpcError) else None
            raise (status or errors.Internal)(message)
        return results

    async def infer(
        self, model_name: str, inputs: Mapping[str, npt.ArrayLike], **kwargs: Any
    ) -> Any:
        """As ModelCaller.infer (it blocks this instance's loop while the call runs)."""
        return self.call(model_name, inputs, **kwargs)[0]

    async def stream(
        self, model_name: str, inputs: Mapping[str, npt.ArrayLike], **kwargs: Any
    ) -> AsyncIterator[dict[str, Array]]:
        """As ModelCaller.stream (the responses arrive together, at the end)."""
        for arrays in self.call(model_name, inputs, decoupled=True, **kwargs):
            yield arrays

    def _exchange(self, message: tuple[str, Any]) -> Any:
        with self._lock:
            return self._exchange_locked(message)

    def _exchange_locked(self, message: tuple[str, Any]) -> Any:
        try:
            self._connection.send(message)
            kind, payload = self._connection.recv()
        except (EOFError, OSError):
            raise Unavailable("the server went away during an in-process model call") from None
        if kind != "bls_done":
            raise errors.Internal(f"unexpected '{kind}' message during an in-process call")
        return payload


async def answer_bls(
    kind: str, payload: Any, caller: ModelCaller | None, arena: Arena, instance: str
) -> tuple[str, Any]:
    """The server's answer to one BLS message of process instance ``instance``."""
    if kind == "bls_ready":
        name, version = payload
        return "bls_done", caller is not None and caller.is_ready(name, version)
    name, version, outputs, parameters, decoupled, metas = payload
    if caller is None:
        return "bls_done", ("Unavailable", "this server has no in-process model caller", [])
    inputs = read_tensors(arena, metas, copy=True)
    responses: list[dict[str, Array]] = []
    try:
        if not caller.is_ready(name, version):
            raise NotFound(f"model '{name}' is unknown or not ready")
        kwargs = {"version": version, "outputs": outputs, "parameters": parameters}
        if decoupled:
            responses = [arrays async for arrays in caller.stream(name, inputs, **kwargs)]
        else:
            responses = [await caller.infer(name, inputs, **kwargs)]
    except RpcError as exc:
        return "bls_done", (type(exc).__name__, exc.message, [])
    written: list[list[TensorMeta]] = []
    offset = arena.half
    for arrays in responses:
        try:
            tensors, offset = write_tensors(arena, offset, arena.size, arrays)
        except ArenaFull as exc:
            return "bls_done", ("ResourceExhausted", _full("outputs", name, exc, instance), [])
        written.append(tensors)
    return "bls_done", (None, "", written)


def _full(what: str, model: str, exc: ArenaFull, instance: str = "") -> str:
    where = f"instance {instance}" if instance else "this instance"
    return (
        f"the {what} of a call to model '{model}' need {exc.needed} bytes of shared memory, more "
        f"than the {exc.available} {where} has for them; raise the model parameter "
        "'instance_shm_bytes'"
    )
