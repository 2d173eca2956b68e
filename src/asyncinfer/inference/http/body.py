"""Reading a request body, bounded: its size by the server's limit (checked against
``Content-Length`` before a byte is read, and again as it arrives, after inflation when it is
gzip or deflate), and the time it may take by a timeout, so that a slow or incomplete body
cannot hold a connection and its memory for ever.

A body that could not be read whole fails with an :class:`UnreadBody` error: the rest of it is
still on the connection, so the reply closes the connection rather than read it as the next
request.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ...errors import DeadlineExceeded, InvalidArgument, ResourceExhausted

__all__ = ["BodyTimeout", "BodyTooLarge", "BodyUnreadable", "UnreadBody", "read_body"]


class UnreadBody:
    """Marks the errors of a body not read whole: their reply closes the connection."""


class BodyTooLarge(UnreadBody, ResourceExhausted):
    """A request body past the server's limit: HTTP 413."""

    http_status = 413


class BodyTimeout(UnreadBody, DeadlineExceeded):
    """A request body that did not arrive in time: HTTP 408."""

    http_status = 408


class BodyUnreadable(UnreadBody, InvalidArgument):
    """A body that is not valid in its Content-Encoding: HTTP 400."""


async def read_body(request: web.Request, limit: int, seconds: float) -> bytes:
    """The whole (inflated) body of ``request``: at most ``limit`` bytes, within ``seconds``."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, f"its Content-Length is {declared}")
    content = request.content
    try:
        if content.is_eof():  # all of it has arrived (small bodies): nothing to bound
            if hdrs.CONTENT_ENCODING in request.headers:
                return await request.read()  # inflated as read() reads it
            # Taken as it arrived, in one call: read() would await two more reads and copy it.
            body = content.read_nowait()
            if len(body) > limit:  # no Content-Length (chunked): read() would refuse it
                raise _too_large(limit, "it grew past that as it arrived")
            return body
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(
            f"the request body did not arrive within {seconds:g} s (it is incomplete or too "
            "slow); send the whole body promptly"
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit, "it grew past that as it arrived") from None
    except (HttpProcessingError, RequestPayloadError) as exc:
        # The payload stays failed; marked finished, aiohttp does not read (and fail, and log
        # a traceback) again after the reply, which closes the connection.
        request.content.feed_eof()
        cause = exc.__cause__ or exc.__context__ or exc
        raise BodyUnreadable(
            f"the request body could not be read ({_cause(cause)}); a body with "
            "Content-Encoding gzip or deflate must be valid in that encoding"
        ) from None


def _cause(exc: BaseException) -> str:
    text = getattr(exc, "message", "") or str(exc)
    return f"{type(exc).__name__}: {text}".strip().rstrip(":")


def _too_large(limit: int, why: str) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request body is larger than this server's limit of {limit} bytes ({why}); "
        "send less, or raise --max-receive-message-bytes"
    )
