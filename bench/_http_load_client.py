"""The load client of bench/infer_http.py: KServe v2 REST infer calls at fixed concurrency.

A separate process (its CPU is not the server's), on aiohttp's client with one keep-alive
connection per request in flight. For each level it keeps exactly N requests in flight for
``--warmup`` seconds (not recorded), then for ``--duration`` seconds. ``--encoding json`` sends
and asks for JSON ``data``; ``binary`` uses Triton's binary tensor data extension both ways.
The first reply of every level is checked against the expected arithmetic. The last stdout line
is one JSON object: per level, requests, errors, throughput, latencies.

Run: python bench/_http_load_client.py --url 127.0.0.1:8000 --model simple --concurrency 1,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import aiohttp
import numpy as np

HEADER = "Inference-Header-Content-Length"


def request_body(model: str, encoding: str, elements: int) -> tuple[bytes, dict[str, str]]:
    if model == "simple":
        arrays = {"INPUT0": np.arange(16, dtype=np.int32), "INPUT1": np.full(16, 3, np.int32)}
        shape, outputs = [1, 16], ["OUTPUT0", "OUTPUT1"]
    else:
        arrays = {"INPUT0": np.arange(elements, dtype=np.int32)}
        shape, outputs = [1, elements], ["OUTPUT0"]
    binary = encoding == "binary"
    inputs = []
    for name, array in arrays.items():
        tensor: dict[str, Any] = {"name": name, "datatype": "INT32", "shape": shape}
        if binary:
            tensor["parameters"] = {"binary_data_size": array.nbytes}
        else:
            tensor["data"] = array.tolist()
        inputs.append(tensor)
    wanted = [{"name": name, "parameters": {"binary_data": binary}} for name in outputs]
    head = json.dumps({"inputs": inputs, "outputs": wanted}).encode()
    # Replies uncompressed, as tritonclient asks by default (aiohttp's client would otherwise
    # offer gzip, and a server honouring it spends its time compressing).
    plain = {"Accept-Encoding": "identity"}
    if not binary:
        return head, {**plain, "Content-Type": "application/json"}
    body = b"".join([head, *(array.tobytes() for array in arrays.values())])
    return body, {**plain, HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def check(model: str, body: bytes, headers: Any, elements: int) -> str | None:
    length = int(headers.get(HEADER, len(body)))
    message = json.loads(body[:length])
    first = message["outputs"][0]
    if "data" in first:
        got = np.asarray(first["data"], np.int32)
    else:
        got = np.frombuffer(body, np.int32, first["parameters"]["binary_data_size"] // 4, length)
    expected = np.arange(16) + 3 if model == "simple" else np.arange(elements)
    return None if np.array_equal(got.reshape(-1), expected) else f"wrong {first['name']}"


async def measure(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace, concurrency: int
) -> dict[str, Any]:
    body, headers = request_body(args.model, args.encoding, args.elements)
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    checked = False
    begin = time.perf_counter() + args.warmup
    end = begin + args.duration
    last_done = begin

    async def worker() -> None:
        nonlocal errors, first_error, checked, last_done
        while (now := time.perf_counter()) < end:
            try:
                async with session.post(url, data=body, headers=headers) as reply:
                    data = await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"HTTP {reply.status}: {data[:200]!r}")
                    problem = None if checked else check(args.model, data, reply.headers,
                                                         args.elements)  # fmt: skip
                    checked = True
                    if problem:
                        raise RuntimeError(problem)
            except Exception as exc:  # recorded, not raised: the level goes on
                errors += 1
                first_error = first_error or str(exc)
                continue
            done = time.perf_counter()
            if now >= begin:
                latencies.append(done - now)
                last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = last_done - begin
    ordered = sorted(latencies)

    def percentile(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else None

    return {
        "concurrency": concurrency,
        "requests_total": len(latencies),
        "errors": errors,
        "first_error": first_error,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": percentile(0.99),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = f"http://{args.url}/v2/models/{args.model}/infer"
    levels = []
    for concurrency in args.concurrency:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            levels.append(await measure(session, url, args, concurrency))
    return {"url": args.url, "model": args.model, "levels": levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="HOST:PORT of the HTTP server")
    parser.add_argument("--model", default="simple")
    parser.add_argument(
        "--concurrency", type=lambda t: [int(x) for x in t.split(",") if x], default=[1]
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--encoding", choices=("json", "binary"), default="binary")
    parser.add_argument("--elements", type=int, default=0, help="custom_identity_int32 size")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
