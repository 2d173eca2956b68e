"""The load clients' HTTP transport: calls of one HTTP endpoint (POST of a fixed body to a fixed
URL, such as ``http://127.0.0.1:8000/v2/models/simple/infer``) on one aiohttp session, with the
same ``call`` / ``run`` / ``async with`` shape as AsyncClient, so Siege and the CLI's ``async``
and ``siege`` commands drive HTTP endpoints as they drive gRPC methods. A reply other than 200
raises the RpcError class of its status with the server's ``{"error": ...}`` text."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Self

import aiohttp

from ..errors import DeadlineExceeded, Unavailable, UsageError, from_http_reply
from ..tls import ClientTls
from .aio import closed_loop
from .report import Report

__all__ = ["HttpClient"]

Body = bytes | Callable[[int], bytes]


class HttpClient:
    """POSTs to ``url``; ``max_in_flight`` caps the calls in flight (None: no cap)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 10.0,
        max_in_flight: int | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"HttpClient needs an http:// or https:// URL, not {url!r}")
        if max_in_flight is not None and max_in_flight < 1:
            raise UsageError(f"max_in_flight must be >= 1 or None, not {max_in_flight}")
        self.url = url
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._ssl: ssl.SSLContext | bool = tls.ssl_context() if tls is not None else True
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop the session belongs to.
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def call(self, request: bytes, *, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (a per-call deadline, as AsyncClient's)
        if self._slots is None:
            return await self._post(request, timeout)
        async with self._slots:
            return await self._post(request, timeout)

    async def _post(self, body: bytes, seconds: float | None) -> bytes:
        seconds = self.timeout if seconds is None else seconds
        try:
            async with self._open().post(
                self.url,
                data=body,
                headers=self._headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as reply:
                data = await reply.read()
        except TimeoutError:
            raise DeadlineExceeded(f"{self.url} did not answer within {seconds} s") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"cannot reach {self.url}: {exc}") from None
        if reply.status != 200:
            raise from_http_reply(reply.status, data)
        return data

    async def run(
        self,
        request: Body,
        *,
        concurrency: int = 16,
        duration: float | None = None,
        count: int | None = None,
    ) -> Report:
        """Closed loop: ``concurrency`` callers back to back until ``duration`` or ``count``."""
        return await closed_loop(
            self.call, request, concurrency=concurrency, duration=duration, count=count
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
