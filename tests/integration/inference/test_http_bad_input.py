"""Bad input over HTTP: each case answers ``{"error": ...}`` with a clear status and a message
saying what was wrong and what was expected, and the server keeps serving. Requests are sent by
aiohttp's client, and by a raw socket where a client library would not send them (a lying
Content-Length, a body that never completes)."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest

from asyncinfer.inference.app import build_server
from asyncinfer.server import Server

from .inference_servers import REPOSITORY, ThreadedServer

LIMIT = 1 << 20  # the body limit these servers run with
A = list(range(16))


def _server() -> Server:
    server = build_server(REPOSITORY, grpc_port=0, http_port=0, http_body_timeout=1.0)
    server.config = dataclasses.replace(server.config, max_receive_message_bytes=LIMIT)
    return server


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = ThreadedServer(_server)
    with server:
        yield server.http_address


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _simple(**changes: Any) -> dict[str, Any]:
    inputs = [
        {"name": name, "datatype": "INT32", "shape": [1, 16], "data": A}
        for name in ("INPUT0", "INPUT1")
    ]
    inputs[0].update(changes)
    return {"inputs": inputs}


async def _post(
    session: aiohttp.ClientSession,
    address: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v2/models/simple/infer",
) -> tuple[int, dict[str, Any]]:
    data = io.BytesIO(body)  # aiohttp warns of large raw bytes
    async with session.post(f"http://{address}{path}", data=data, headers=headers) as reply:
        return reply.status, await reply.json(content_type=None)


async def _assert_serving(session: aiohttp.ClientSession, address: str) -> None:
    status, reply = await _post(session, address, json.dumps(_simple()).encode())
    assert status == 200, reply
    assert reply["outputs"][0]["data"] == [2 * a for a in A]


BINARY = np.arange(16, dtype=np.int32).tobytes()


def _binary(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + data, {"Inference-Header-Content-Length": str(len(text))}


def _binary_inputs(size0: int, size1: int) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "INT32",
                "shape": [1, 16],
                "parameters": {"binary_data_size": size},
            }
            for name, size in (("INPUT0", size0), ("INPUT1", size1))
        ]
    }


CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    (
        "malformed JSON",
        b'{"inputs": [',
        {},
        400,
        "failed to parse the request JSON buffer: Expecting value at offset 12",
    ),
    ("not an object", b"[1, 2]", {}, 400, "must be a JSON object, not an array"),
    ("no inputs", b"{}", {}, 400, "the request for model 'simple' has no 'inputs'"),
    (
        "header length past the body",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "500"},
        400,
        "Inference-Header-Content-Length 500 is past the end of the request body (14 bytes)",
    ),
    (
        "header length not a number",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "ten"},
        400,
        "Inference-Header-Content-Length must be a byte count, not 'ten'",
    ),
    (
        "binary sizes add up to less than sent",
        *_binary(_binary_inputs(64, 32), BINARY * 2),
        400,
        "has 128 bytes of binary data after the JSON header, but its inputs' binary_data_size "
        "parameters add up to 96",
    ),
    (
        "binary size past the end",
        *_binary(_binary_inputs(64, 128), BINARY * 2),
        400,
        "input 'INPUT1' for model 'simple': binary_data_size 128 at offset 64 is past the end",
    ),
    (
        "binary size that does not fit the shape",
        *_binary(_binary_inputs(60, 68), BINARY * 2),
        400,
        "input 'INPUT0'",
    ),
    (
        "JSON array of the wrong length",
        json.dumps(_simple(data=A[:15])).encode(),
        {},
        400,
        "unexpected number of elements 15 in data of input 'INPUT0' for model 'simple', "
        "expecting 16 for shape [1, 16]",
    ),
    (
        "JSON array of the wrong nesting",
        json.dumps(_simple(data=[A[:8], A[8:]])).encode(),
        {},
        400,
        "'data' does not nest as its shape [1, 16]: dimension 0 has 2 where 1 were expected",
    ),
    (
        "JSON values of the wrong kind",
        json.dumps(_simple(data=["x"] * 16)).encode(),
        {},
        400,
        "data of input 'INPUT0' for model 'simple' holds values that are not INT32",
    ),
    (
        "unknown datatype",
        json.dumps(_simple(datatype="INT33")).encode(),
        {},
        400,
        "INT33",
    ),
    (
        "FP16 as JSON",
        json.dumps(_simple(datatype="FP16")).encode(),
        {},
        400,
        "receiving FP16 data via JSON is not supported",
    ),
    (
        "data and binary data both",
        *_binary(
            {"inputs": [{**_simple()["inputs"][0], "parameters": {"binary_data_size": 64}}]},
            BINARY,
        ),
        400,
        "has binary data and also 'data' or shared memory: give one",
    ),
    (
        "JSON nested past any sane depth",
        b"[" * 100_000 + b"]" * 100_000,
        {},
        400,
        "failed to parse the request JSON buffer: nested too deeply",
    ),
    (
        "tensor data nested past any sane depth",
        json.dumps(_simple(data=["DEEP"])).replace('"DEEP"', "[" * 5000 + "]" * 5000).encode(),
        {},
        400,
        "failed to parse the request JSON buffer: nested too deeply",
    ),
    (
        "corrupt gzip body",
        b"\x1f\x8b\x08\x00not gzip at all",
        {"Content-Encoding": "gzip"},
        400,
        "the request body could not be read",
    ),
    (
        "oversize body",
        b" " * (LIMIT + 1),
        {},
        413,
        f"the request body is larger than this server's limit of {LIMIT} bytes",
    ),
    (
        "oversize once inflated",
        gzip.compress(b" " * (LIMIT + 1)),
        {"Content-Encoding": "gzip"},
        413,
        f"the request body is larger than this server's limit of {LIMIT} bytes",
    ),
]


@pytest.mark.parametrize(("body", "headers", "status", "text"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
async def test_bad_body_answers_status_and_message_and_server_keeps_serving(
    address: str,
    session: aiohttp.ClientSession,
    body: bytes,
    headers: dict[str, str],
    status: int,
    text: str,
) -> None:
    got, reply = await _post(session, address, body, headers)
    assert (got, list(reply)) == (status, ["error"]), reply
    assert text in reply["error"]
    await _assert_serving(session, address)


@pytest.mark.parametrize("data", [["1.5", "2"], [None, 1.0], [1.0, {"a": 1}]])
async def test_float_data_that_is_not_numbers_is_refused(
    address: str, session: aiohttp.ClientSession, data: list[Any]
) -> None:
    """Strings are not FP32 elements, not even ones that spell a number (numpy would read them)."""
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": data}]}
    path = "/v2/models/identity_fp32/infer"
    got, reply = await _post(session, address, json.dumps(body).encode(), path=path)
    assert got == 400, reply
    wanted = "data of input 'INPUT0' for model 'identity_fp32' holds values that are not FP32"
    assert wanted in reply["error"]
    await _assert_serving(session, address)
    good = {"inputs": [{**body["inputs"][0], "data": [1.5, 2]}]}
    got, reply = await _post(session, address, json.dumps(good).encode(), path=path)
    assert (got, reply["outputs"][0]["data"]) == (200, [1.5, 2.0]), reply


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/v2/nowhere", 404, "Not Found: GET /v2/nowhere"),
        ("DELETE", "/v2/models/simple/infer", 405, "Method Not Allowed: DELETE"),
        ("GET", "/v2/models/nope/config", 404, "Request for unknown model: 'nope' is not found"),
        ("POST", "/v2/models/nope/infer", 404, "Request for unknown model: 'nope' is not found"),
    ],
)
async def test_unknown_paths_and_methods_answer_json_errors(
    address: str, session: aiohttp.ClientSession, method: str, path: str, status: int, text: str
) -> None:
    async with session.request(method, f"http://{address}{path}") as reply:
        assert reply.status == status
        assert text in (await reply.json())["error"]


async def _raw(address: str, request: bytes, *, close: bool = True) -> bytes:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(65536) if close else await reader.readuntil(b"}")
    finally:
        writer.close()


async def test_a_content_length_shorter_than_the_body(
    address: str, session: aiohttp.ClientSession
) -> None:
    body = json.dumps(_simple()).encode()
    head = (
        f"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) - 20}"
        "\r\n\r\n"
    ).encode()
    # The body's last bytes read as the next request's start line: aiohttp's parser answers
    # 400 (its own text/plain message) and closes the connection.
    reply = await _raw(address, head + body)
    assert reply.startswith(b"HTTP/1.0 400 Bad Request")
    assert b"Invalid method encountered" in reply
    await _assert_serving(session, address)


def _chunked(body: bytes, size: int = 4096) -> bytes:
    """``body`` as HTTP/1.1 chunks: a request without a Content-Length."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (json.dumps(_simple()).encode(), b"200", b'"data":[0,2,4,'),
        (b" " * (LIMIT + 1), b"413", f"server's limit of {LIMIT} bytes".encode()),
    ],
    ids=["whole", "oversize"],
)
async def test_a_chunked_body_is_read_whole_and_bounded(
    address: str, session: aiohttp.ClientSession, body: bytes, status: bytes, text: bytes
) -> None:
    # No Content-Length to check first: the limit is checked on what arrived.
    head = b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply = await _raw(address, head + _chunked(body), close=False)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
    assert text in reply
    await _assert_serving(session, address)


async def test_an_incomplete_body_times_out(address: str, session: aiohttp.ClientSession) -> None:
    body = json.dumps(_simple()).encode()
    head = (
        f"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 100}"
        "\r\n\r\n"
    ).encode()
    reply = await _raw(address, head + body, close=False)
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"the request body did not arrive within 1 s" in reply
    await _assert_serving(session, address)


async def test_a_corrupt_body_logs_no_traceback(
    address: str, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # A client must not be able to fill the log: the reply is all a bad body costs.
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            status, _ = await _post(
                session, address, b"\x1f\x8b\x08\x00not gzip at all", {"Content-Encoding": "gzip"}
            )
            assert status == 400
        await _assert_serving(session, address)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
