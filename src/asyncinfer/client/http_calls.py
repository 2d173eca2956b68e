"""The inference RPCs RemoteManager makes, over HTTP/REST instead of gRPC (``http://`` and
``https://`` URLs): RepositoryIndex, ModelMetadata and ModelInfer as KServe v2 REST calls on
aiohttp's client, answering the same protobuf reply bytes, so the runners above them do not
change. Inputs and outputs travel as binary tensors (Triton's binary data extension); an error
reply ``{"error": ...}`` becomes the RpcError class of its HTTP status.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
from google.protobuf import json_format

from ..errors import DeadlineExceeded, Unavailable, UsageError, from_http_reply
from ..pb.inference import grpc_service_pb2 as pb
from ..tls import ClientTls

__all__ = ["HttpCalls", "is_http_url"]

HEADER_LENGTH = "Inference-Header-Content-Length"


def is_http_url(url: object) -> bool:
    return isinstance(url, str) and url.startswith(("http://", "https://"))


class HttpCalls:
    """One aiohttp session to ``url``; ``call(method, request)`` answers a reply's bytes."""

    def __init__(self, url: str, *, timeout: float, tls: ClientTls | None) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | bool = True
        if tls is not None:
            if not url.startswith("https://"):
                raise UsageError(f"tls= needs an https:// URL, not {url!r}")
            self._ssl = tls.ssl_context()
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def call(self, method: str, request: Any) -> bytes:
        if method == "RepositoryIndex":
            reply = await self._json("POST", "/v2/repository/index", {"ready": request.ready})
            message: Any = json_format.ParseDict({"models": reply}, pb.RepositoryIndexResponse())
        elif method == "ModelMetadata":
            path = f"/v2/models/{request.name}"
            message = json_format.ParseDict(
                await self._json("GET", path),
                pb.ModelMetadataResponse(),
                ignore_unknown_fields=True,
            )
        elif method == "ModelInfer":
            return await self._infer(request)
        else:
            raise UsageError(f"{method} is not one of the calls RemoteManager makes over HTTP")
        return message.SerializeToString()  # type: ignore[no-any-return]

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UsageError("connect() the RemoteManager (or use `async with`) first")
        return self._session

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[bytes, Any]:
        session = self._session_or_fail()
        try:
            async with session.request(
                method, self.url + path, data=body, headers=headers, ssl=self._ssl
            ) as reply:
                data = await reply.read()
                if reply.status != 200:
                    raise from_http_reply(reply.status, data)
                return data, reply.headers
        except TimeoutError:
            raise DeadlineExceeded(
                f"{method} {self.url}{path} had no reply within {self._timeout.total} s"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            # What grpc says of a server it cannot reach: the same class over both protocols.
            raise Unavailable(f"{method} {self.url}{path}: {exc}") from None

    async def _json(self, method: str, path: str, value: Any = None) -> Any:
        body = None if value is None else json.dumps(value).encode()
        data, _ = await self._send(method, path, body, {"Content-Type": "application/json"})
        return json.loads(data)

    async def _infer(self, request: pb.ModelInferRequest) -> bytes:
        inputs = [
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
            for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True)
        ]
        head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
        body = b"".join([head, *request.raw_input_contents])
        path = f"/v2/models/{request.model_name}"
        if request.model_version:
            path += f"/versions/{request.model_version}"
        headers = {HEADER_LENGTH: str(len(head)), "Content-Type": "application/octet-stream"}
        data, reply_headers = await self._send("POST", path + "/infer", body, headers)
        length = int(reply_headers.get(HEADER_LENGTH, len(data)))
        message = json.loads(data[:length])
        reply = pb.ModelInferResponse(
            model_name=message["model_name"], model_version=message["model_version"]
        )
        offset = length
        for output in message["outputs"]:
            reply.outputs.add(name=output["name"], datatype=output["datatype"],
                              shape=output["shape"])  # fmt: skip
            size = output.get("parameters", {}).get("binary_data_size", 0)
            reply.raw_output_contents.append(data[offset : offset + size])
            offset += size
        return reply.SerializeToString()
