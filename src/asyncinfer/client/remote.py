"""The InferRunner API over the inference protocol: RemoteManager (asyncio), SyncRemoteManager.

    async with RemoteManager("127.0.0.1:8001") as manager:
        runner = manager.infer_runner("simple")
        outputs = await runner.infer(INPUT0=a, INPUT1=b)      # {"OUTPUT0": ..., "OUTPUT1": ...}

    with SyncRemoteManager("127.0.0.1:8001") as manager:
        outputs = manager.infer_runner("simple").infer(INPUT0=a, INPUT1=b).result()

    async with RemoteManager("http://127.0.0.1:8000") as manager:   # over HTTP/REST
        ...

Connecting reads the repository index and the metadata of every ready model, so bindings are
known locally and ``infer`` checks names, dtypes and shapes before anything is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Self

import grpc
import numpy as np
import numpy.typing as npt

from .._threads import LoopThread
from ..datatypes import BYTES, as_array, deserialize_bytes, from_wire, serialize_bytes
from ..errors import UsageError
from ..pb.inference import grpc_service_pb2 as pb
from ..runner import Binding, NamedBindings
from ..tls import ClientTls
from ._method import to_error
from .channel import Targets, aio_channel, channel_options, sync_channel
from .http_calls import HttpCalls, is_http_url

__all__ = ["RemoteManager", "RemoteRunner", "SyncRemoteManager", "SyncRemoteRunner"]

Outputs = dict[str, npt.NDArray[Any]]
_SERVICE = "/inference.GRPCInferenceService/"


Metadata = dict[str, pb.ModelMetadataResponse]
# One step of the connect conversation: the method to call and its request; the reply's bytes
# are sent back in. Both managers drive the same generator, one blocking, one with await.
_Conversation = Generator[tuple[str, Any], bytes, Metadata]


def _read_metadata() -> _Conversation:
    """The repository index, then the metadata of every ready model in it."""
    raw = yield "RepositoryIndex", pb.RepositoryIndexRequest(ready=True)
    index = pb.RepositoryIndexResponse.FromString(raw)
    metadata: Metadata = {}
    for name in sorted({model.name for model in index.models}):
        raw = yield "ModelMetadata", pb.ModelMetadataRequest(name=name)
        metadata[name] = pb.ModelMetadataResponse.FromString(raw)
    return metadata


def _drive(conversation: _Conversation, call: Callable[[str, Any], bytes]) -> Metadata:
    try:
        step = next(conversation)
        while True:
            step = conversation.send(call(*step))
    except StopIteration as done:
        metadata: Metadata = done.value
        return metadata


async def _drive_async(
    conversation: _Conversation, call: Callable[[str, Any], Awaitable[bytes]]
) -> Metadata:
    try:
        step = next(conversation)
        while True:
            step = conversation.send(await call(*step))
    except StopIteration as done:
        metadata: Metadata = done.value
        return metadata


def _bindings(tensors: Any) -> dict[str, Binding]:
    bindings = {}
    for tensor in tensors:
        datatype = from_wire(tensor.datatype)
        if datatype is None:
            raise UsageError(f"the server reports an unknown datatype {tensor.datatype!r}")
        bindings[tensor.name] = Binding(
            tensor.name, datatype.wire, datatype.dtype, tuple(tensor.shape)
        )
    return bindings


class _Runner(NamedBindings):
    """Bindings, request building and response decoding shared by both flavours."""

    def __init__(self, name: str, version: str, metadata: pb.ModelMetadataResponse) -> None:
        self._name = name
        self._version = version
        self._inputs = _bindings(metadata.inputs)
        self._outputs = _bindings(metadata.outputs)

    def _request(self, inputs: Mapping[str, npt.ArrayLike]) -> pb.ModelInferRequest:
        # Checked here by the server's own validator (the same texts, InvalidArgument), before
        # anything is sent; never converted (float64 -> INT32 would truncate).
        arrays = {name: as_array(value) for name, value in inputs.items()}
        self.signature().check_arrays(arrays)
        request = pb.ModelInferRequest(model_name=self._name, model_version=self._version)
        for name, array in arrays.items():
            binding = self._inputs[name]
            request.inputs.add(name=name, datatype=binding.datatype, shape=array.shape)
            data = serialize_bytes(array) if binding.datatype == BYTES else array.tobytes()
            request.raw_input_contents.append(data)
        return request

    @staticmethod
    def _outputs_of(raw: bytes) -> Outputs:
        reply = pb.ModelInferResponse.FromString(raw)
        outputs: Outputs = {}
        for tensor, data in zip(reply.outputs, reply.raw_output_contents, strict=True):
            shape = tuple(tensor.shape)
            if tensor.datatype == BYTES:
                count = int(np.prod(shape))
                outputs[tensor.name] = deserialize_bytes(data, count, what=tensor.name).reshape(
                    shape
                )
            else:
                datatype = from_wire(tensor.datatype)
                if datatype is None:
                    raise UsageError(f"the server sent an unknown datatype {tensor.datatype!r}")
                outputs[tensor.name] = np.frombuffer(data, datatype.dtype).reshape(shape)
        return outputs


class RemoteRunner(_Runner):
    """Runs one remote model from asyncio; ``infer`` returns an awaitable asyncio.Future."""

    def __init__(self, manager: RemoteManager, name: str, version: str, metadata: Any) -> None:
        super().__init__(name, version, metadata)
        self._manager = manager

    def infer(self, **inputs: npt.ArrayLike) -> asyncio.Future[Outputs]:
        request = self._request(inputs)  # bad input raises here, before a future exists
        # The caller owns the returned future; cancelling it cancels the call.
        return asyncio.ensure_future(self._infer(request))

    async def _infer(self, request: pb.ModelInferRequest) -> Outputs:
        raw = await self._manager._call("ModelInfer", request)
        return self._outputs_of(raw)


class RemoteManager:
    """Models of a remote inference service, for asyncio code. Use ``async with``.

    ``url``: one address, several (round-robin over them) or a ``dns:///`` name (gRPC); or
    an ``http://`` or ``https://`` URL of the HTTP/REST front end (http_calls.py).
    """

    def __init__(
        self, url: Targets, *, timeout: float = 30.0, tls: ClientTls | None = None
    ) -> None:
        self.url = url
        self.tls = tls
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._http: HttpCalls | None = None
        self._metadata: dict[str, pb.ModelMetadataResponse] = {}

    async def connect(self) -> Self:
        """Open the channel and read the ready models' metadata; on failure nothing stays open."""
        if self._channel is not None or self._http is not None:
            raise UsageError(f"RemoteManager({self.url!r}) is already connected")
        if is_http_url(self.url):
            assert isinstance(self.url, str)
            self._http = HttpCalls(self.url, timeout=self.timeout, tls=self.tls)
            await self._http.open()
        else:
            self._channel = aio_channel(self.url, channel_options(), self.tls)
        try:
            self._metadata = await _drive_async(_read_metadata(), self._call)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        channel, self._channel, self._metadata = self._channel, None, {}
        http, self._http = self._http, None
        if channel is not None:
            await channel.close(None)
        if http is not None:
            await http.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def get_models(self) -> list[str]:
        self._check()
        return sorted(self._metadata)

    def infer_runner(self, name: str, version: str = "") -> RemoteRunner:
        self._check()
        if name not in self._metadata:
            raise UsageError(f"{self.url} has no ready model '{name}'; it has {self.get_models()}")
        return RemoteRunner(self, name, version, self._metadata[name])

    def _check(self) -> None:
        if self._channel is None and self._http is None:
            raise UsageError("connect() the RemoteManager (or use `async with`) first")

    async def _call(self, method: str, request: Any) -> bytes:
        self._check()
        if self._http is not None:
            return await self._http.call(method, request)
        assert self._channel is not None
        call = self._channel.unary_unary(
            _SERVICE + method, request_serializer=_serialize, response_deserializer=None
        )
        try:
            return await call(request, timeout=self.timeout)  # type: ignore[no-any-return]
        except grpc.RpcError as exc:
            raise to_error(exc) from None


class SyncRemoteRunner(_Runner):
    """Runs one remote model from blocking code; ``infer`` returns a concurrent Future."""

    def __init__(self, manager: SyncRemoteManager, name: str, version: str, metadata: Any) -> None:
        super().__init__(name, version, metadata)
        self._manager = manager

    def infer(self, **inputs: npt.ArrayLike) -> concurrent.futures.Future[Outputs]:
        request = self._request(inputs)
        result: concurrent.futures.Future[Outputs] = concurrent.futures.Future()
        reply = self._manager._future("ModelInfer", request)

        def done(reply: Any) -> None:
            # Runs on a grpc thread, or the HTTP client's loop thread, when the call completes;
            # only the future is touched here.
            try:
                result.set_result(self._outputs_of(reply.result()))
            except grpc.RpcError as exc:
                result.set_exception(to_error(exc))
            except Exception as exc:
                result.set_exception(exc)

        reply.add_done_callback(done)
        return result


class SyncRemoteManager:
    """Models of a remote inference service, for blocking code. Use ``with``.

    ``url``: one address, several (round-robin over them) or a ``dns:///`` name; or an
    ``http://`` or ``https://`` URL of the HTTP/REST front end, whose calls run on a loop of
    the manager's own, in one thread (``infer`` still answers a concurrent Future).
    """

    def __init__(
        self, url: Targets, *, timeout: float = 30.0, tls: ClientTls | None = None
    ) -> None:
        self.url = url
        self.tls = tls
        self.timeout = timeout
        self._channel: grpc.Channel | None = None
        self._http: HttpCalls | None = None
        self._loop: LoopThread | None = None
        self._metadata: dict[str, pb.ModelMetadataResponse] = {}

    def connect(self) -> Self:
        """Open the channel and read the ready models' metadata; on failure nothing stays open."""
        if self._channel is not None or self._http is not None:
            raise UsageError(f"SyncRemoteManager({self.url!r}) is already connected")
        try:
            if is_http_url(self.url):
                assert isinstance(self.url, str)
                http = HttpCalls(self.url, timeout=self.timeout, tls=self.tls)
                self._loop = LoopThread("asyncinfer-http-client")
                self._loop.run(http.open())
                self._http = http
            else:
                self._channel = sync_channel(self.url, channel_options(), self.tls)
            self._metadata = _drive(_read_metadata(), self._blocking)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        channel, self._channel, self._metadata = self._channel, None, {}
        http, self._http, loop, self._loop = self._http, None, self._loop, None
        if channel is not None:
            channel.close()
        if loop is not None:
            if http is not None:
                loop.run(http.close(), self.timeout)
            loop.close()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_models(self) -> list[str]:
        self._check()
        return sorted(self._metadata)

    def infer_runner(self, name: str, version: str = "") -> SyncRemoteRunner:
        if name not in self.get_models():
            raise UsageError(f"{self.url} has no ready model '{name}'; it has {self.get_models()}")
        return SyncRemoteRunner(self, name, version, self._metadata[name])

    def _check(self) -> None:
        if self._channel is None and self._http is None:
            raise UsageError("connect() the SyncRemoteManager (or use `with`) first")

    def _callable(self, method: str) -> Any:
        self._check()
        assert self._channel is not None
        return self._channel.unary_unary(
            _SERVICE + method, request_serializer=_serialize, response_deserializer=None
        )

    def _future(self, method: str, request: Any) -> Any:
        """The reply's bytes as a future: a grpc call future, or a concurrent Future over HTTP."""
        if self._http is not None and self._loop is not None:
            return self._loop.submit(self._http.call(method, request))
        return self._callable(method).future(request, timeout=self.timeout)

    def _blocking(self, method: str, request: Any) -> bytes:
        if self._http is not None and self._loop is not None:
            return self._loop.run(self._http.call(method, request))
        try:
            return self._callable(method)(request, timeout=self.timeout)  # type: ignore[no-any-return]
        except grpc.RpcError as exc:
            raise to_error(exc) from None


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()  # type: ignore[no-any-return]
