"""The main function of one process instance: a python model's Model object in its own process.

Spawned by ProcessBackend (process.py). It imports model.py, creates and initializes one Model,
then serves ``execute`` messages from its pipe until told to stop or the pipe closes (the
server went away). Tensors come and go through the shared-memory arena (_arena.py); the pipe
carries only small control messages:

    server -> instance   ("execute", [RequestMeta, ...])  |  ("stop", None)
    instance -> server   ("ready", (pid, changed))  |  ("failed", message)
                         ("done", ([ResponseMeta, ...], changed))  |  ("error", (message, changed))

A request's ``cancelled()`` reads its flag byte in the arena (_arena.Flag), set by the server
when the caller goes away. ``changed`` is what the model did to its custom metrics since the
previous reply (custom_metrics.Changes, None when nothing): the server applies it to its own
families, so they are exported like a thread instance's.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pathlib
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from ..custom_metrics import Changes, record_changes
from ..python_model import Request, Response
from ._arena import Arena, ArenaFull, Flag, TensorMeta, read_tensors, write_tensors
from ._bls_pipe import PipeCaller
from .model_module import import_model, model_class, one_line  # the same rules as in-process

__all__ = ["RequestMeta", "ResponseMeta", "main"]

#: id, parameters, requested output names, input tensors, offset of its cancellation flag
RequestMeta = tuple[str, dict[str, Any], tuple[str, ...], list[TensorMeta], int]
#: error message (None: success), output tensors, the error's status class name ("": INTERNAL),
#: response parameters
ResponseMeta = tuple[str | None, list[TensorMeta], str, dict[str, Any]]


def _entry() -> None:
    """``python -m`` entry: argv[1] is the inherited pipe descriptor; the first message on it
    carries main()'s other arguments."""
    connection = Connection(int(sys.argv[1]))
    try:
        arguments = connection.recv()
    except (EOFError, OSError):
        return
    main(connection, *arguments)


def main(
    connection: Connection,
    arena_fd: int,
    arena_size: int,
    model_path: str,
    name: str,
    version: int,
    args: dict[str, str],
) -> None:
    """Run one instance until "stop" or until the server closes the pipe."""
    loop = asyncio.new_event_loop()
    arena = Arena.attach(arena_fd, arena_size)
    changes = record_changes()  # before the import: a module may make its families there
    try:
        module = import_model(pathlib.Path(model_path), name, version)
        instance = model_class(module, pathlib.Path(model_path), name, version)()
        hook = getattr(instance, "initialize", None)
        if hook is not None:
            # In-process model calls go to the server through this pipe (_bls_pipe.py).
            _run(loop, hook, {**args, "models": PipeCaller(connection, arena)})
    except BaseException as exc:
        message = exc.message if hasattr(exc, "message") else one_line(exc)
        connection.send(("failed", message))
        return
    connection.send(("ready", (os.getpid(), changes.take())))
    try:
        _serve(connection, loop, arena, instance, name, changes)
    finally:
        hook = getattr(instance, "finalize", None)
        if hook is not None:
            try:
                _run(loop, hook)
            except Exception:
                traceback.print_exc()
        arena.close()
        loop.close()


def _run(loop: asyncio.AbstractEventLoop, hook: Any, *args: Any) -> Any:
    if inspect.iscoroutinefunction(hook):
        return loop.run_until_complete(hook(*args))
    return hook(*args)


def _serve(
    connection: Connection,
    loop: asyncio.AbstractEventLoop,
    arena: Arena,
    instance: Any,
    name: str,
    changes: Changes,
) -> None:
    while True:
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if kind == "stop":
            return
        requests: list[Request] = []
        try:
            requests = [_request(arena, meta) for meta in payload]
            responses = _run(loop, instance.execute, requests)
            if not isinstance(responses, list | tuple) or len(responses) != len(requests):
                raise TypeError(
                    f"model '{name}' execute() must return a list of {len(requests)} Response "
                    f"objects, got {type(responses).__name__}"
                )
            _end(requests)
            requests = []  # views into the arena's input half end here
            metas = _write_responses(arena, list(responses), name)
            connection.send(("done", (metas, changes.take())))
        except BaseException as exc:
            _end(requests)
            connection.send(("error", (one_line(exc), changes.take())))


def _request(arena: Arena, meta: RequestMeta) -> Request:
    request_id, parameters, requested, tensors, flag = meta
    inputs = read_tensors(arena, tensors, copy=False)
    request = Request(
        inputs, requested_output_names=requested, parameters=parameters, id=request_id
    )
    request._cancellation = Flag(arena, flag)
    return request


def _end(requests: list[Request]) -> None:
    """The execute has returned: its flag bytes go to the next execute, so a request the model
    keeps answers ``cancelled()`` with the last value its flag had."""
    for request in requests:
        request._cancellation.freeze()


def _write_responses(arena: Arena, responses: list[Any], name: str) -> list[ResponseMeta]:
    metas: list[ResponseMeta] = []
    offset = arena.half
    for response in responses:
        if not isinstance(response, Response):
            raise TypeError(
                f"model '{name}' execute() returned {type(response).__name__} where a "
                "Response was expected"
            )
        if response.error is not None:
            status = response.error.status
            metas.append((str(response.error.message), [], status.__name__ if status else "", {}))
            continue
        try:
            tensors, offset = write_tensors(arena, offset, arena.size, response.outputs())
        except ArenaFull as exc:
            metas.append((_full(name, exc), [], "", {}))
            continue
        metas.append((None, tensors, "", dict(response.parameters)))
    return metas


def _full(name: str, exc: ArenaFull) -> str:
    return (
        f"the outputs of model '{name}' need {exc.needed} bytes of shared memory, more than "
        f"the {exc.available} its instance has for outputs; raise the model parameter "
        "'instance_shm_bytes'"
    )


if __name__ == "__main__":
    _entry()
