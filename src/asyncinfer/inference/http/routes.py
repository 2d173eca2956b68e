"""The KServe v2 REST routes with Triton's extensions: one aiohttp handler per endpoint, each a
thin adapter over the service's resources (control_calls.py, shared memory, settings) and the
data plane (``LoadedModel.infer`` and ``stream``).

Every failure answers ``{"error": "<message>"}`` with the error's ``http_status``
(errors.py); the texts are the gRPC front end's, since both call the same code.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ...errors import InvalidArgument, Unimplemented, echo
from ..control_calls import (
    load_model,
    model_metadata,
    repository_index,
    statistics_models,
    trace_settings,
    unload_model,
)
from ..request_tracing import traced_request
from ..service import SERVER_NAME, InferenceResources
from .body import read_body
from .codec import HEADER_LENGTH, HeaderPlans, decode_request, encode_response, parse_json
from .generate import generate, generate_stream
from .proto_json import message_json

__all__ = ["ROUTES", "add_routes"]

_MODEL = "/v2/models/{model}"
_VERSIONED = "/v2/models/{model}/versions/{version}"
_JSON = "application/json"


#: What ``json.dumps(value, separators=(",", ":"))`` encodes with, made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(value).encode(), status=status, content_type=_JSON)


@dataclasses.dataclass(frozen=True)
class Routes:
    """The handlers, over one service's resources; each body is read within ``body_timeout``
    seconds and holds at most ``max_body_bytes``."""

    resources: InferenceResources
    body_timeout: float
    max_body_bytes: int
    #: Request headers seen before, by model: a repeated binary request skips its JSON.
    header_plans: HeaderPlans = dataclasses.field(default_factory=HeaderPlans)

    async def _body(self, request: web.Request) -> bytes:
        return await read_body(request, self.max_body_bytes, self.body_timeout)

    def _model(self, request: web.Request) -> tuple[str, str]:
        return request.match_info["model"], request.match_info.get("version", "")

    async def _json_body(self, request: web.Request, what: str) -> dict[str, Any]:
        """The request's JSON object body ({} when it has none)."""
        body = await self._body(request)
        if not body.strip():
            return {}
        value = parse_json(body, what)
        if not isinstance(value, dict):
            raise InvalidArgument(f"the {what} body must be a JSON object")
        return value

    # ---------------------------------------------------------------- health and metadata

    async def live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.resources.ready() else 400)

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = self._model(request)
        ready = self.resources.repository.is_ready(name, version)
        return web.Response(status=200 if ready else 400)

    async def server_metadata(self, request: web.Request) -> web.Response:
        resources = self.resources
        return json_response(
            {
                "name": SERVER_NAME,
                "version": resources.version,
                "extensions": resources.extensions(),
            }
        )

    async def metadata(self, request: web.Request) -> web.Response:
        metadata = model_metadata(self.resources, *self._model(request))
        return json_response(dataclasses.asdict(metadata))

    async def config(self, request: web.Request) -> web.Response:
        model = self.resources.repository.get(*self._model(request))
        return json_response(message_json(model.config))

    async def statistics(self, request: web.Request) -> web.Response:
        name = request.match_info.get("model", "")
        version = request.match_info.get("version", "")
        models = statistics_models(self.resources, name, version)
        stats = [message_json(m.stats.message(m.name, m.version)) for m in models]
        return json_response({"model_stats": stats})

    # ---------------------------------------------------------------- inference

    async def infer(self, request: web.Request) -> web.StreamResponse:
        name, version = self._model(request)
        model = self.resources.repository.get(name, version)
        body = await self._body(request)
        header_length = request.headers.get(HEADER_LENGTH)
        # The leases on shared memory last until the reply is encoded: its arrays may view them.
        with self.resources.shm.scope() as scope:
            decoded = decode_request(body, header_length, model.name, scope, self.header_plans)
            if self.resources.trace_settings.active:
                # One span per request when the model's trace settings sample it; the caller's
                # W3C ``traceparent`` header is its parent.
                with traced_request(
                    self.resources.tracing, model, decoded.request, request.headers
                ):
                    response = await model.infer(decoded.request)
            else:
                response = await model.infer(decoded.request)
            parts, json_length = encode_response(
                response, decoded.binary_default, decoded.binary_outputs
            )
        del response  # no view of leased memory outlives the scope
        if json_length is None:
            headers = {"Content-Type": _JSON}
        else:
            headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(json_length)}
        reply = web.Response(body=parts[0] if len(parts) == 1 else b"".join(parts), headers=headers)
        accepted = request.headers.get("Accept-Encoding")
        if accepted is not None and _compressible(accepted.lower()):
            reply.enable_compression()
        return reply

    async def generate(self, request: web.Request) -> web.Response:
        model = self.resources.repository.get(*self._model(request))
        message = await self._json_body(request, "generate request")
        return json_response(await generate(model, message))

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        model = self.resources.repository.get(*self._model(request))
        message = await self._json_body(request, "generate request")
        return await generate_stream(model, message, request)

    # ---------------------------------------------------------------- repository

    async def index(self, request: web.Request) -> web.Response:
        body = await self._json_body(request, "repository index")
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidArgument("repository index: 'ready' must be a boolean")
        entries = repository_index(
            self.resources, request.match_info.get("repository", ""), ready=ready
        )
        return json_response([dataclasses.asdict(entry) for entry in entries])

    async def load(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        body = await self._json_body(request, "model load")
        parameters: dict[str, Any] = {}
        for key, value in (body.get("parameters") or {}).items():
            if key.startswith("file:") and isinstance(value, str):
                try:
                    value = base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise InvalidArgument(
                        f"failed to load '{echo(name)}', parameter '{echo(key)}' must be the "
                        "file's bytes in base64"
                    ) from None
            parameters[key] = value
        await load_model(self.resources, name, parameters)
        return web.Response(status=200)

    async def unload(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        body = await self._json_body(request, "model unload")
        parameters = body.get("parameters") or {}
        if parameters.get("unload_dependents", False) is not False:
            raise Unimplemented(
                f"failed to unload '{echo(name)}': 'unload_dependents' is not supported by "
                "this server (unload each model by name)"
            )
        await unload_model(self.resources, name)
        return web.Response(status=200)

    # ---------------------------------------------------------------- shared memory

    async def system_status(self, request: web.Request) -> web.Response:
        regions = self.resources.shm.system_status(request.match_info.get("region", ""))
        return json_response([dataclasses.asdict(region) for region in regions])

    async def system_register(self, request: web.Request) -> web.Response:
        body = await self._json_body(request, "shared memory register")
        key = _typed(body, "key", str, "system shared memory register")
        offset = _typed(body, "offset", int, "system shared memory register", default=0)
        size = _typed(body, "byte_size", int, "system shared memory register")
        self.resources.shm.register_system(request.match_info["region"], key, offset, size)
        return web.Response(status=200)

    async def system_unregister(self, request: web.Request) -> web.Response:
        self.resources.shm.unregister_system(request.match_info.get("region", ""))
        return web.Response(status=200)

    async def cuda_status(self, request: web.Request) -> web.Response:
        regions = self.resources.shm.cuda_status(request.match_info.get("region", ""))
        return json_response([dataclasses.asdict(region) for region in regions])

    async def cuda_register(self, request: web.Request) -> web.Response:
        what = "CUDA shared memory register"
        body = await self._json_body(request, what)
        handle = _typed(body, "raw_handle", dict, what)
        try:
            raw = base64.b64decode(_typed(handle, "b64", str, what), validate=True)
        except binascii.Error:
            raise InvalidArgument(f"{what}: 'raw_handle' 'b64' is not base64") from None
        device = _typed(body, "device_id", int, what, default=0)
        size = _typed(body, "byte_size", int, what)
        self.resources.shm.register_cuda(request.match_info["region"], raw, device, size)
        return web.Response(status=200)

    async def cuda_unregister(self, request: web.Request) -> web.Response:
        self.resources.shm.unregister_cuda(request.match_info.get("region", ""))
        return web.Response(status=200)

    # ---------------------------------------------------------------- settings

    async def trace(self, request: web.Request) -> web.Response:
        model = request.match_info.get("model", "")
        changes: dict[str, list[str]] = {}
        if request.method == "POST":
            for key, value in (await self._json_body(request, "trace setting")).items():
                if value is None:
                    changes[key] = []
                elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                    changes[key] = value
                elif isinstance(value, str):
                    changes[key] = [value]
                else:
                    raise InvalidArgument(
                        f"trace setting '{echo(key)}' takes a string, a list of strings or null"
                    )
        settings = trace_settings(self.resources, model, changes)
        return json_response(
            {
                key: (values if key == "trace_level" else "".join(values[:1]))
                for key, values in settings.items()
            }
        )

    async def logging(self, request: web.Request) -> web.Response:
        changes = {}
        if request.method == "POST":
            changes = await self._json_body(request, "log settings")
        return json_response(self.resources.log_settings.update(changes))


def _compressible(accepted: str) -> bool:
    """Whether aiohttp compresses a reply for this (lowercased) Accept-Encoding, as it reads
    one: only when it names deflate or gzip (for identity or any other coding it sends the
    body as it is, so it need not be asked)."""
    return "deflate" in accepted or "gzip" in accepted


def _typed(body: dict[str, Any], key: str, kind: type, what: str, default: Any = None) -> Any:
    value = body.get(key, default)
    if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"{what}: '{key}' must be {kind.__name__}, got {value!r:.60}")
    return value


def _table() -> list[tuple[str, str, str, str]]:
    """Every route: (method, path, Routes method, the API tritonserver's --http-restricted-api
    names it by). Matched in this order: inference first, it is most of the calls."""
    rows = [("POST", f"{base}/infer", "infer", "inference") for base in (_MODEL, _VERSIONED)]
    rows += [
        ("GET", "/v2/health/live", "live", "health"),
        ("GET", "/v2/health/ready", "ready", "health"),
        ("GET", "/v2", "server_metadata", "metadata"),
        ("GET", "/v2/models/stats", "statistics", "statistics"),
    ]
    for base in (_VERSIONED, _MODEL):
        rows += [
            ("GET", f"{base}/ready", "model_ready", "health"),
            ("GET", base, "metadata", "metadata"),
            ("GET", f"{base}/config", "config", "model-config"),
            ("GET", f"{base}/stats", "statistics", "statistics"),
            ("POST", f"{base}/generate", "generate", "inference"),
            ("POST", f"{base}/generate_stream", "generate_stream", "inference"),
        ]
    rows += [
        ("POST", "/v2/repository/index", "index", "model-repository"),
        ("POST", "/v2/repository/{repository}/index", "index", "model-repository"),
        ("POST", "/v2/repository/models/{model}/load", "load", "model-repository"),
        ("POST", "/v2/repository/models/{model}/unload", "unload", "model-repository"),
    ]
    for kind in ("system", "cuda"):
        base = f"/v2/{kind}sharedmemory"
        rows += [
            ("GET", f"{base}/status", f"{kind}_status", "shared-memory"),
            ("GET", f"{base}/region/{{region}}/status", f"{kind}_status", "shared-memory"),
            ("POST", f"{base}/region/{{region}}/register", f"{kind}_register", "shared-memory"),
            ("POST", f"{base}/unregister", f"{kind}_unregister", "shared-memory"),
            ("POST", f"{base}/region/{{region}}/unregister", f"{kind}_unregister",
             "shared-memory"),
        ]  # fmt: skip
    for path in ("/v2/trace/setting", f"{_MODEL}/trace/setting"):
        rows += [("GET", path, "trace", "trace"), ("POST", path, "trace", "trace")]
    rows += [("GET", "/v2/logging", "logging", "logging"), ("POST", "/v2/logging", "logging",
                                                             "logging")]  # fmt: skip
    return rows


ROUTES = _table()


def add_routes(
    app: web.Application,
    resources: InferenceResources,
    *,
    body_timeout: float,
    max_body_bytes: int,
    wrap: Callable[[Handler, str], Handler] = lambda handler, api: handler,
) -> None:
    """Every route of the protocol on ``app``, each handler as ``wrap(handler, its API)``."""
    routes = Routes(resources, body_timeout, max_body_bytes)
    for method, path, name, api in ROUTES:
        app.router.add_route(method, path, wrap(getattr(routes, name), api))
