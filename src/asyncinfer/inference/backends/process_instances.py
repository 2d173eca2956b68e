"""Process instances for python models: each Model instance in its own spawned process.

Chosen per model with the config parameter ``instance_kind: "process"`` (the default,
``"thread"``, is ThreadBackend). Python model code holds the GIL, so threads of one process
add no throughput; processes do. Each instance has a shared-memory arena (_arena.py) that
carries the tensors both ways, and a pipe that carries only small control messages, the design
of Triton's python backend. The server side never blocks its loop on an instance: the pipe is
read from a loop reader callback.

A crashed instance process fails the execute it was running with UNAVAILABLE naming the model
and instance, and is restarted; the model keeps serving on its other instances meanwhile, and
on the restarted one as soon as it is initialized again. One that cannot be initialized again
is marked broken, once (never re-spawned in a loop): its requests go to the other instances, or
fail with UNAVAILABLE when none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import pathlib
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from ... import errors
from ...errors import (
    InstanceBroken,
    Internal,
    InvalidArgument,
    ModelLoadFailed,
    ResourceExhausted,
    RpcError,
    Unavailable,
)
from ...pb.inference.model_config_pb2 import ModelConfig
from ..custom_metrics import Changed, Mirror
from ..inprocess import ModelCaller, ModelLookup
from ..model_files import model_file
from ..python_model import ModelError, Request, Response, Tensor
from ._arena import Arena, ArenaFull, TensorMeta, read_tensors, write_flags, write_tensors
from ._bls_pipe import BLS_KINDS, answer_bls
from ._instance_process import RequestMeta, ResponseMeta
from .base import instance_count, mark_cancelled
from .model_module import DEFAULT_FILENAME, initialize_args

__all__ = ["INSTANCE_KIND", "SHM_BYTES", "ProcessBackend", "instance_kind"]

log = logging.getLogger("asyncinfer.inference")
INSTANCE_KIND = "instance_kind"  # model parameter: "thread" (default) or "process"
SHM_BYTES = "instance_shm_bytes"  # model parameter: arena bytes per process instance
DEFAULT_SHM_BYTES = 16 << 20
START_TIMEOUT_S = 120.0  # spawning imports numpy and the model; a loaded machine is slow
#: Instance processes started at once by one load (each is a fresh interpreter importing
#: numpy and the model): more would only contend for the same cores.
START_PARALLELISM = max(os.cpu_count() or 1, 2)
STOP_TIMEOUT_S = 5.0
#: Starts of an instance that died, tried in a row while each start is killed before its
#: model reports (an initialize() that raises is not tried again), and the first pause.
RESTART_ATTEMPTS = 4
RESTART_BACKOFF_S = 0.5
INSTANCE_MODULE = "asyncinfer.inference.backends._instance_process"
#: The instance's replies, each (payload, the custom metrics' changes since the last reply).
REPLIES = ("ready", "done", "error")


def instance_kind(config: ModelConfig) -> str:
    """'thread' or 'process', from the model's ``instance_kind`` parameter."""
    kind = (
        config.parameters[INSTANCE_KIND].string_value if INSTANCE_KIND in config.parameters else ""
    )
    kind = kind or "thread"
    if kind not in ("thread", "process"):
        raise InvalidArgument(
            f"failed to load '{config.name}', parameter '{INSTANCE_KIND}' must be 'thread' or "
            f"'process', not '{kind}'"
        )
    if kind == "process" and config.model_transaction_policy.decoupled:
        raise InvalidArgument(
            f"failed to load '{config.name}', decoupled models run as thread instances; "
            f"'{INSTANCE_KIND}: process' is not supported for them"
        )
    return kind


def _status(name: str) -> type[RpcError] | None:
    """The RpcError class an instance named for a failed response (None: INTERNAL)."""
    found = getattr(errors, name, None) if name else None
    return found if isinstance(found, type) and issubclass(found, RpcError) else None


def _shm_bytes(config: ModelConfig) -> int:
    text = config.parameters[SHM_BYTES].string_value if SHM_BYTES in config.parameters else ""
    if not text:
        return DEFAULT_SHM_BYTES
    if not text.isdigit() or int(text) < 4096:
        raise InvalidArgument(
            f"failed to load '{config.name}', parameter '{SHM_BYTES}' must be a whole number "
            f">= 4096, not '{text}'"
        )
    return int(text)


async def _start_all(instances: list[_Instance]) -> None:
    """Start ``instances``, at most :data:`START_PARALLELISM` at once (each start is a fresh
    interpreter importing the model); the first failure once all have ended."""
    gate = asyncio.Semaphore(START_PARALLELISM)

    async def start(instance: _Instance) -> None:
        async with gate:
            await instance.start()

    results = await asyncio.gather(*(start(i) for i in instances), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]


class _Instance:
    """One instance process, its arena and its pipe; one execute at a time."""

    @classmethod
    def create(
        cls, model: str, index: int, arena_size: int, spawn_args: tuple[Any, ...]
    ) -> _Instance:
        """A new instance with its arena; ModelLoadFailed when the arena cannot be made."""
        try:
            return cls(model, index, arena_size, spawn_args)
        except OSError as exc:
            raise ModelLoadFailed(
                f"failed to load '{model}': instance {model}_{index}: cannot create its "
                f"shared-memory arena of {arena_size} bytes: {exc.strerror}"
            ) from None

    def __init__(self, model: str, index: int, arena_size: int, spawn_args: tuple[Any, ...]):
        self.model = model
        self.label = f"{model}_{index}"
        self._spawn_args = spawn_args
        self._arena = Arena.create(arena_size)
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._broken: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._stopping = False
        #: Its Model is initialized and no exit seen since: only then does an exit restart it.
        #: An exit while starting fails that start instead, so a model that cannot start
        #: again is marked broken once rather than re-spawned in a loop.
        self._serving = False
        self._exited = False  # the current process's pipe reported EOF
        self.restarts = 0
        #: Where the model's in-process calls go (its args["models"] in the instance process).
        self.models: ModelCaller | None = None
        #: Where its custom metrics' changes go: the model's families in this process.
        self.metrics: Mirror | None = None
        self._calls: set[asyncio.Task[tuple[str, Any]]] = set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Spawn the process and wait until its Model is initialized; ModelLoadFailed if not."""
        kind, payload = await self._spawn()
        if kind != "ready":
            raise ModelLoadFailed(
                f"failed to load '{self.model}': instance {self.label}: {payload}"
            )
        self._serving = True
        self._ready.set()

    async def _spawn(self) -> tuple[str, Any]:
        """("ready", pid) with the process serving, or ("failed", why) with it gone."""
        kind, payload = await self._launch()
        if kind == "ready" and self._exited:
            # It exited right after "ready", before anyone marked it serving: a failed start.
            kind, payload = "failed", "the process exited right after it started"
        if kind != "ready":
            await self._kill()  # its reader too: a later EOF must not restart a failed start
        return kind, payload

    async def _launch(self) -> tuple[str, Any]:
        # A fresh interpreter running the instance module (not multiprocessing's spawn, which
        # would re-import the server's __main__ script in the child); the pipe's other end is
        # handed down as an inherited descriptor.
        connection, child = multiprocessing.Pipe(duplex=True)
        arena_fd = self._arena.fd
        assert arena_fd is not None
        command = [sys.executable, "-m", INSTANCE_MODULE, str(child.fileno())]
        try:
            process = await asyncio.to_thread(
                subprocess.Popen,
                command,
                pass_fds=(child.fileno(), arena_fd),  # same numbers in the child
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()  # ours closed, so the pipe reports EOF when the process dies
        self._process, self._connection = process, connection
        self._exited = False
        try:
            connection.send((arena_fd, self._arena.size, *self._spawn_args))
        except OSError as exc:
            return "failed", f"the process exited before it got its arguments ({exc})"
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        loop.add_reader(connection.fileno(), self._on_readable)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                result: tuple[str, Any] = await asyncio.shield(self._waiter)
                return result
        except TimeoutError:
            return "failed", f"did not start within {START_TIMEOUT_S:.0f} s"
        except Unavailable as exc:
            # It exited without a word from its model (killed, or crashed outright): unlike
            # an initialize() that raised, another try may well succeed.
            return "exited", exc.message

    async def stop(self) -> None:
        self._stopping = True
        # From now on every execute that reaches this instance fails with UNAVAILABLE, the
        # ones waiting for a restart included (set() wakes them; the restart is cancelled).
        self._broken = f"model '{self.model}' instance {self.label} was stopped"
        restart = self._restart
        if restart is not None:
            restart.cancel()
            # An exception of the restart itself is _restart_done's to log.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await restart
        self._ready.set()
        # Wait for a running execute (the arena must not go while the process uses it), but
        # not forever: an execute stuck past the timeout has its process killed under it.
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._lock.acquire()
            locked = True
        except TimeoutError:
            locked = False
        try:
            # Asked to stop only when serving: one still in initialize() would not read it.
            serving = self._serving and self._connection is not None
            if locked and serving and self._process is not None:
                assert self._connection is not None
                with contextlib.suppress(OSError):
                    self._connection.send(("stop", None))
                await _wait(self._process)
            await self._kill()
            self._fail_waiter("was stopped")
        finally:
            if locked:
                self._lock.release()
        self._arena.close()

    async def _kill(self) -> None:
        process, connection = self._process, self._connection
        if connection is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(connection.fileno())
            connection.close()
        if process is not None and process.poll() is None:
            process.kill()
            await _wait(process)
        self._process = self._connection = None

    @property
    def broken(self) -> bool:
        """True when the process died and could not be started again."""
        return self._broken is not None

    # ------------------------------------------------------------------ requests

    async def run(self, requests: list[Request]) -> list[Response]:
        await self._lock.acquire()
        handed_over = False
        try:
            await self._ready.wait()  # a restart may be in progress
            if self._broken is not None:
                raise InstanceBroken(self._broken)
            assert self._connection is not None
            metas = self._write(requests)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self._watch(requests, metas, waiter)
            try:
                self._connection.send(("execute", metas))
            except OSError:
                # It died since its last request and its EOF is not read yet; the request
                # never reached it. The EOF callback restarts it.
                self._waiter = None
                waiter.cancel()
                raise Unavailable(
                    f"model '{self.model}' instance {self.label} exited; retry the request"
                ) from None
            # From here the lock is released when the reply (or the crash) arrives, not when
            # this call returns: a cancelled caller must not let the next execute overwrite
            # the arena while the process still reads it.
            waiter.add_done_callback(lambda _: self._lock.release())
            handed_over = True
        finally:
            if not handed_over:
                self._lock.release()
        try:
            kind, payload = await asyncio.shield(waiter)
        except asyncio.CancelledError:
            # The call running these requests was cancelled: the execute sees it now through
            # the flags (_watch), as a thread instance's does; its reply is dropped.
            mark_cancelled(requests)
            raise
        if kind == "error":
            raise RuntimeError(f"model '{self.model}' instance {self.label}: {payload}")
        responses: list[Response] = payload
        return responses

    def _write(self, requests: list[Request]) -> list[RequestMeta]:
        """The requests' inputs, then one cancellation flag byte each, into the input half."""
        written: list[list[TensorMeta]] = []
        offset = 0
        try:
            for request in requests:
                arrays = {tensor.name: tensor.as_numpy() for tensor in request.inputs()}
                tensors, offset = write_tensors(self._arena, offset, self._arena.half, arrays)
                written.append(tensors)
            flags = write_flags(self._arena, offset, self._arena.half, len(requests))
        except ArenaFull as exc:
            raise ResourceExhausted(
                f"the inputs of the request(s) to model '{self.model}' need {exc.needed} "
                f"bytes of shared memory, more than the {exc.available} that instance "
                f"{self.label} has for inputs; raise the model parameter '{SHM_BYTES}'"
            ) from None
        return [
            (r.id, dict(r.parameters), r.requested_output_names, tensors, flags + i)
            for i, (r, tensors) in enumerate(zip(requests, written, strict=True))
        ]

    def _watch(
        self, requests: list[Request], metas: list[RequestMeta], waiter: asyncio.Future[Any]
    ) -> None:
        """Set a request's flag byte when its caller goes away (at once if it already has);
        the instance's ``Request.cancelled()`` reads it. Only while ``waiter`` is pending: the
        execute runs and the arena's input half is its own (the lock is released only when
        the waiter is done; after that the byte may hold the next execute's inputs)."""
        for request, meta in zip(requests, metas, strict=True):
            cancellation = request._cancellation
            if cancellation is not None:
                cancellation.add_callback(functools.partial(_flag, self._arena, meta[4], waiter))

    # ------------------------------------------------------------------ the pipe

    def _on_readable(self) -> None:
        assert self._connection is not None
        try:
            kind, payload = self._connection.recv()
        except (EOFError, OSError):
            self._on_exit()
            return
        if kind in BLS_KINDS:  # a call the running execute makes; its waiter stays pending
            self._answer_bls(kind, payload)
            return
        if kind in REPLIES:
            payload, changed = payload
            if changed is not None and self.metrics is not None:
                self._apply_metrics(changed)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if kind == "done":
            # Copied out here, before the waiter's callback frees the arena for the next call.
            # A reader callback must not raise: the waiter would never be set, and the lock
            # its done callback releases would stay held.
            try:
                payload = [self._response(meta) for meta in payload]
            except Exception as exc:
                waiter.set_exception(
                    Internal(f"model '{self.model}' instance {self.label}: bad response: {exc}")
                )
                return
        waiter.set_result((kind, payload))

    def _apply_metrics(self, changed: Changed) -> None:
        # A reader callback must not raise (see _on_readable): a malformed change is logged.
        assert self.metrics is not None
        try:
            self.metrics.apply(changed)
        except Exception:
            log.exception("custom metrics of instance %s could not be applied", self.label)

    def _response(self, meta: ResponseMeta) -> Response:
        error, tensors, status, parameters = meta
        if error is not None:
            return Response(error=ModelError(error, _status(status)))
        arrays = read_tensors(self._arena, tensors, copy=True)
        outputs = [Tensor(name, array) for name, array in arrays.items()]
        return Response(outputs, parameters=parameters)

    def _answer_bls(self, kind: str, payload: Any) -> None:
        # Owned by the instance: kept in _calls until done. The execute that made the call
        # holds the instance's lock until it returns, so the arena stays this call's.
        task = asyncio.ensure_future(
            answer_bls(kind, payload, self.models, self._arena, self.label)
        )
        self._calls.add(task)
        task.add_done_callback(self._bls_answered)

    def _bls_answered(self, task: asyncio.Task[tuple[str, Any]]) -> None:
        self._calls.discard(task)
        if task.cancelled() or self._connection is None:
            return
        exc = task.exception()
        answer = task.result() if exc is None else ("bls_done", ("Internal", str(exc), []))
        with contextlib.suppress(OSError):
            self._connection.send(answer)

    def _on_exit(self) -> None:
        assert self._connection is not None
        asyncio.get_running_loop().remove_reader(self._connection.fileno())
        self._exited = True
        if self._stopping:
            self._fail_waiter("was stopped")
            return
        if not self._serving:
            # Still starting (first start or a restart): that start fails; no restart here.
            self._fail_waiter("exited while starting")
            return
        self._serving = False
        self._ready.clear()
        # At most one restart at a time: the next one needs _serving, set only after this
        # one succeeds. stop() cancels it; _restart_done clears it and logs a failure.
        self._restart = asyncio.get_running_loop().create_task(
            self._restart_process(), name=f"restart:{self.label}"
        )
        self._restart.add_done_callback(self._restart_done)

    def _restart_done(self, task: asyncio.Task[None]) -> None:
        if self._restart is task:
            self._restart = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug in the restart must not leave requests waiting on _ready forever.
            log.error("restarting instance %s failed", self.label, exc_info=exc)
            self._broken = f"model '{self.model}' instance {self.label} could not be restarted"
            self._ready.set()

    def _fail_waiter(self, what: str) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                Unavailable(f"model '{self.model}' instance {self.label} {what}; retry the request")
            )

    async def _restart_process(self) -> None:
        if self._broken is not None:
            return  # stopped before this task ran
        process = self._process
        assert process is not None  # else _restart_done marks it broken: nobody waits forever
        await _wait(process)
        code = process.returncode
        log.error(
            "model '%s' instance %s (pid %s) exited with code %s; restarting it",
            self.model,
            self.label,
            process.pid,
            code,
        )
        self._fail_waiter(f"process exited (code {code}) while running the request")
        await self._kill()
        self.restarts += 1
        kind, payload = await self._spawn()
        for attempt in range(RESTART_ATTEMPTS - 1):
            if kind != "exited":
                break
            # Killed while it started again: not the model's fault, so try again (a bounded
            # number of times, backing off) rather than leave the instance broken for good.
            log.error(
                "model '%s' instance %s exited while restarting; trying again",
                self.model,
                self.label,
            )
            await asyncio.sleep(RESTART_BACKOFF_S * 2**attempt)
            self.restarts += 1
            kind, payload = await self._spawn()
        if kind == "ready":
            self._serving = True
        else:
            self._broken = (
                f"model '{self.model}' instance {self.label} could not be restarted: {payload}"
            )
            log.error("%s", self._broken)
        self._ready.set()


def _flag(arena: Arena, offset: int, waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():  # see _Instance._watch
        arena.view[offset] = 1


async def _wait(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)


class ProcessBackend:
    """A python model whose instances are processes; same Backend surface as ThreadBackend."""

    def __init__(
        self, name: str, version: int, instances: list[_Instance], metrics: Mirror
    ) -> None:
        self.name = name
        self.version = version
        self.decoupled = False
        self._instances = instances
        self._metrics = metrics  # the families its instances made, exported until unload
        self._idle: asyncio.Queue[_Instance] = asyncio.Queue()
        for instance in instances:
            self._idle.put_nowait(instance)

    @classmethod
    async def load(
        cls,
        config: ModelConfig,
        version: int,
        version_dir: pathlib.Path,
        repository: pathlib.Path,
        *,
        models: ModelLookup | None = None,
    ) -> ProcessBackend:
        name = config.name
        path = model_file(config, version_dir, DEFAULT_FILENAME)
        if not path.is_file():
            raise ModelLoadFailed(
                f"failed to load '{name}' version {version}: {path} does not exist"
            )
        size = _shm_bytes(config)
        args = initialize_args(config, version, repository)
        instances: list[_Instance] = []
        metrics = Mirror(name)
        try:
            for index in range(instance_count(config)):
                spawn_args = (
                    str(path),
                    name,
                    version,
                    {**args, "model_instance_name": f"{name}_{index}"},
                )
                instance = _Instance.create(name, index, size, spawn_args)
                instance.models = ModelCaller(models) if models is not None else None
                instance.metrics = metrics
                instances.append(instance)
            await _start_all(instances)
        except BaseException:
            # Whatever failed (an arena, a start, cancellation): every instance made so far
            # goes, its process, pipe and arena descriptor with it.
            await asyncio.gather(*(i.stop() for i in instances), return_exceptions=True)
            raise
        return cls(name, version, instances, metrics)

    @property
    def instance_count(self) -> int:
        return len(self._instances)

    @property
    def healthy(self) -> bool:
        """False while every instance is broken (ModelReady says false then)."""
        return not all(i.broken for i in self._instances)

    def statistics(self) -> dict[str, Any]:
        return {"restarts": {i.label: i.restarts for i in self._instances}}

    async def execute(self, requests: list[Request]) -> list[Response]:
        """Run ``requests`` on an idle instance; one Response each, in order."""
        while True:
            instance = await self._take()
            try:
                return await instance.run(requests)
            except InstanceBroken:
                # It broke while this request waited for it, before the request reached it:
                # another instance may take it.
                if all(i.broken for i in self._instances):
                    raise
            finally:
                self._idle.put_nowait(instance)

    async def _take(self) -> _Instance:
        """An idle instance; one that could not be restarted only when no other works."""
        instance = await self._idle.get()
        for _ in range(len(self._instances) - 1):
            if not instance.broken or all(i.broken for i in self._instances):
                break
            self._idle.put_nowait(instance)
            instance = await self._idle.get()
        return instance

    async def execute_on(self, index: int, requests: list[Request]) -> list[Response]:
        """Run ``requests`` on instance ``index`` (the sequence batcher pins sequences)."""
        return await self._instances[index].run(requests)

    async def unload(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._instances), return_exceptions=True)
        self._instances.clear()
        self._metrics.clear()
