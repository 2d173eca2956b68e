"""The bare HTTP baseline of bench/infer_http.py: the least a KServe v2 REST server can do for
Triton's ``simple`` (INT32 add/sub) and ``custom_identity_int32``, on one HTTP library.

``--library aiohttp`` (what asyncinfer's HTTP front end uses) or ``--library starlette``
(Starlette on uvicorn, what MLServer and many Python inference servers use; it runs under the
MLServer venv's Python, which has both). The same decode and encode in both: the JSON header,
then binary inputs (``Inference-Header-Content-Length``) or JSON ``data``; outputs binary when
the request asks (``binary_data``), JSON otherwise. No checks beyond what the arithmetic needs:
this is the floor the real server is measured against.

Run: python bench/_bare_http.py --port 8000 [--library aiohttp|starlette]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

HEADER = "Inference-Header-Content-Length"


def compute(body: bytes, headers: Mapping[str, str], model: str) -> tuple[bytes, dict[str, str]]:
    """The reply body and headers of one infer request to ``model``."""
    length = int(headers.get(HEADER, len(body)))
    message = json.loads(body[:length])
    arrays = []
    offset = length
    for tensor in message["inputs"]:
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            arrays.append(np.asarray(tensor["data"], np.int32).reshape(tensor["shape"]))
        else:
            data = np.frombuffer(body, np.int32, size // 4, offset)
            arrays.append(data.reshape(tensor["shape"]))
            offset += size
    if model == "simple":
        results = {"OUTPUT0": arrays[0] + arrays[1], "OUTPUT1": arrays[0] - arrays[1]}
    else:
        results = {"OUTPUT0": arrays[0]}
    wanted = {
        output["name"]: output.get("parameters", {}).get("binary_data", False)
        for output in message.get("outputs", [])
    } or dict.fromkeys(results, message.get("parameters", {}).get("binary_data_output", False))
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, binary in wanted.items():
        array = results[name]
        entry: dict[str, Any] = {"name": name, "datatype": "INT32", "shape": list(array.shape)}
        if binary:
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    head = json.dumps({"model_name": model, "model_version": "1", "outputs": outputs}).encode()
    if not tail:
        return head, {"Content-Type": "application/json"}
    reply_headers = {"Content-Type": "application/octet-stream", HEADER: str(len(head))}
    return b"".join([head, *tail]), reply_headers


def aiohttp_app() -> Any:
    """The bare aiohttp application (bench/_http_probe.py drives it in process too)."""
    from aiohttp import web

    async def infer(request: web.Request) -> web.Response:
        body, headers = compute(await request.read(), request.headers, request.match_info["m"])
        return web.Response(body=body, headers=headers)

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v2/models/{m}/infer", infer)
    app.router.add_get("/v2/health/ready", ready)
    return app


def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    app = aiohttp_app()
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    import asyncio

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"bare aiohttp serving on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def serve_starlette(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def infer(request: Request) -> Response:
        body, headers = compute(await request.body(), request.headers, request.path_params["m"])
        return Response(body, headers=headers)

    async def ready(request: Request) -> Response:
        return Response()

    app = Starlette(
        routes=[
            Route("/v2/models/{m}/infer", infer, methods=["POST"]),
            Route("/v2/health/ready", ready),
        ]
    )
    print(f"bare starlette serving on 127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--library", choices=("aiohttp", "starlette"), default="aiohttp")
    args = parser.parse_args()
    (serve_aiohttp if args.library == "aiohttp" else serve_starlette)(args.port)


if __name__ == "__main__":
    main()
