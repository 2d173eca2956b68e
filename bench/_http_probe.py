"""In-process CPU cost of one `simple` HTTP infer through asyncinfer's front end and the bare one's.

The HTTP twin of bench/_dataplane_probe.py. Builds asyncinfer's inference server on
examples/model_repository with its HTTP front end, takes the front end's real aiohttp
application (its middlewares, router, route and handler over ``LoadedModel.infer``) and
awaits ``Application._handle`` with each request, as aiohttp's connection handler does: the
router resolves POST /v2/models/simple/infer, the middlewares run, the handler reads the body
and answers. The requests are aiohttp's own ``Request`` objects, made with its test utility
``make_mocked_request`` over a ``StreamReader`` holding the whole body (as a small body has
arrived whole over a real connection); they are made before each timed stretch, so neither
the mocks nor the HTTP parsing are timed. In process, not a loopback connection: a connection
would time the client, the kernel and aiohttp's C parser and writer too, the same on both
sides and most of the cost, and hide what the front end itself adds. Writing the reply's
status line and headers (aiohttp's writer) is left out for the same reason.

The bodies are what tritonclient.http sends (``InferenceServerClient.generate_request_body``):
``json`` (inputs and outputs as JSON ``data``) and ``binary`` (Triton's binary data
extension both ways). Beside asyncinfer's app it times, on the same bodies,
bench/_bare_http.py's aiohttp app driven the same way (``bare_app``) and its ``compute``
alone (``bare``). Each round times N requests with ``time.process_time``, in tasks of 64; the
figures are medians of 5 rounds in µs per request.

Run: .venv/bin/python bench/_http_probe.py [--requests N] [--profile]
The last stdout line is one JSON object: per body, per side the median and the rounds, and
``ratio`` (asyncinfer / bare) and ``ratio_app`` (asyncinfer / bare_app), medians of the
rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import _bare_http as bare
import numpy as np
import tritonclient.http as httpclient
from _dataplane_probe import REPOSITORY, in_tasks, medians, round_ratio, timed_rounds
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from asyncinfer.inference import build_server
from asyncinfer.inference.http.front_end import HttpFrontEnd

PATH = "/v2/models/simple/infer"


def _body(binary: bool) -> tuple[bytes, dict[str, str]]:
    """A `simple` request as tritonclient.http encodes and sends it."""
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = httpclient.InferInput(name, [1, 16], "INT32")
        tensor.set_data_from_numpy(np.arange(16, dtype=np.int32).reshape(1, 16), binary_data=binary)
        inputs.append(tensor)
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUTPUT0", "OUTPUT1")
    ]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs)
    headers = {"Host": "127.0.0.1:8000", "User-Agent": "python/gevent-http-client-2.0"}
    headers["Content-Length"] = str(len(body))
    if json_size is not None:
        headers[bare.HEADER] = str(json_size)
    return bytes(body), headers


class _Protocol:
    """What a StreamReader asks of its connection: nothing, the body has arrived."""

    def pause_reading(self, **options: object) -> None:
        pass

    def resume_reading(self, **options: object) -> None:
        pass


def _request(app: web.Application, body: bytes, headers: dict[str, str]) -> web.Request:
    loop = asyncio.get_running_loop()
    payload = StreamReader(_Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
    payload.feed_data(body)
    payload.feed_eof()
    return make_mocked_request("POST", PATH, headers, app=app, payload=payload, loop=loop)


#: n -> a coroutine returning the CPU seconds its handling of n requests took (in tasks of
#: _dataplane_probe.PER_TASK, the requests made before each, outside the timing).
Side = Callable[[int], Coroutine[Any, Any, float]]


def _app_side(
    app: web.Application,
    body: bytes,
    headers: dict[str, str],
    check: bool = False,
    profiler: cProfile.Profile | None = None,
) -> Side:
    async def run(n: int) -> float:
        requests = [_request(app, body, headers) for _ in range(n)]
        if profiler is not None:
            profiler.enable()
        start = time.process_time()
        for request in requests:
            reply = await app._handle(request)
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}: {reply.body!r:.300}")  # type: ignore[attr-defined]
        spent = time.process_time() - start
        if profiler is not None:
            profiler.disable()
        if check:  # the same answer as the bare one's
            _check(reply.body, reply.headers, *bare.compute(body, headers, "simple"))  # type: ignore[attr-defined]
        return spent

    return run


def _check(got: bytes, got_headers: Any, want: bytes, want_headers: dict[str, str]) -> None:
    split, want_split = (
        int(got_headers.get(bare.HEADER, len(got))),
        int(want_headers.get(bare.HEADER, len(want))),
    )
    same = (
        json.loads(got[:split]) == json.loads(want[:want_split])
        and got[split:] == want[want_split:]
    )
    if not same:
        raise RuntimeError(f"asyncinfer answered {got!r:.300}, the bare server {want!r:.300}")


def _compute_side(body: bytes, headers: dict[str, str]) -> Side:
    async def run(n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            bare.compute(body, headers, "simple")
        return time.process_time() - start

    return run


async def _main(requests: int, profile: bool) -> dict[str, Any]:
    server = build_server(REPOSITORY, grpc_port=0, http_port=0)
    await server.start()
    try:
        front_end = next(f for f in server.front_ends if isinstance(f, HttpFrontEnd))
        assert front_end._runner is not None
        ours = front_end._runner.app
        theirs = bare.aiohttp_app()
        theirs.freeze()
        result: dict[str, Any] = {}
        for encoding in ("json", "binary"):
            body, headers = _body(encoding == "binary")
            await _app_side(ours, body, headers, check=True)(2)
            sides = {
                "asyncinfer": _app_side(ours, body, headers),
                "bare_app": _app_side(theirs, body, headers),
                "bare": _compute_side(body, headers),
            }
            rounds = await timed_rounds(sides, requests)
            ratios = result[encoding] = medians(rounds, f"{encoding} ")
            ratios["ratio"] = round_ratio(rounds, "asyncinfer", "bare")
            ratios["ratio_app"] = round_ratio(rounds, "asyncinfer", "bare_app")
            print(f"{encoding} asyncinfer / bare: {ratios['ratio']:.3f}, / bare_app: "
                  f"{ratios['ratio_app']:.3f} (medians of the rounds' ratios)")  # fmt: skip
            if profile:
                profiler = cProfile.Profile()
                await in_tasks(_app_side(ours, body, headers, profiler=profiler), requests)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    finally:
        await server.stop()
    return result


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--profile", action="store_true", help="cProfile one more round per body")
    args = parser.parse_args(argv)
    result = asyncio.run(_main(args.requests, args.profile))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
