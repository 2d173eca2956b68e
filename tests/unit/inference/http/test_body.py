"""read_body over aiohttp's own request and payload objects: a body that has arrived whole is
taken at once, and bounded all the same, with or without a Content-Length."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from asyncinfer.inference.http.body import BodyTooLarge, read_body

LIMIT = 1000


class _Protocol:
    """What a StreamReader asks of its connection: nothing here."""

    connected = True

    def pause_reading(self, **options: object) -> None:
        pass

    def resume_reading(self, **options: object) -> None:
        pass


def _request(chunks: list[bytes], headers: dict[str, str], *, eof: bool = True) -> web.Request:
    loop = asyncio.get_running_loop()
    payload = StreamReader(_Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
    for chunk in chunks:
        payload.feed_data(chunk)
    if eof:
        payload.feed_eof()
    return make_mocked_request("POST", "/v2/models/m/infer", headers, payload=payload, loop=loop)


@pytest.mark.parametrize("chunks", [[], [b"x" * 10], [b"a" * 300, b"b" * 300, b"c" * 400]])
async def test_a_body_that_arrived_whole_is_read_as_sent(chunks: list[bytes]) -> None:
    body = b"".join(chunks)
    got = await read_body(_request(chunks, {"Content-Length": str(len(body))}), LIMIT, 1.0)
    assert got == body
    chunked = await read_body(_request(chunks, {"Transfer-Encoding": "chunked"}), LIMIT, 1.0)
    assert chunked == body


@pytest.mark.parametrize(
    "headers", [{"Content-Length": str(LIMIT + 1)}, {"Transfer-Encoding": "chunked"}]
)
async def test_a_body_past_the_limit_is_refused_with_the_limit_named(
    headers: dict[str, str],
) -> None:
    request = _request([b"x" * 600, b"y" * (LIMIT + 1 - 600)], headers)
    with pytest.raises(BodyTooLarge, match=f"larger than this server's limit of {LIMIT} bytes"):
        await read_body(request, LIMIT, 1.0)


async def test_a_body_still_arriving_is_read_within_the_timeout() -> None:
    request = _request([b"part"], {"Content-Length": "8"}, eof=False)
    asyncio.get_running_loop().call_later(0.01, request.content.feed_data, b"rest")
    asyncio.get_running_loop().call_later(0.02, request.content.feed_eof)
    assert await read_body(request, LIMIT, 1.0) == b"partrest"
