"""perf_analyzer with ``-i http`` against the HTTP front end: ``simple`` at concurrency 1 to 64,
and with its inputs and outputs in system shared memory (``--shared-memory=system``), every level
measured and no request failed. Bounded as the gRPC runs are (tests/integration/
test_perf_analyzer.py): short windows, few trials, a timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from asyncinfer._perf_analyzer import PerfAnalyzerResult, run_perf_analyzer
from asyncinfer.inference.app import build_server
from asyncinfer.testing import running

from .inference_servers import REPOSITORY

BOUNDS: dict[str, Any] = {
    "measurement_interval_ms": 400,
    "stability_percent": 1000,
    "max_trials": 4,
    "kill_after": 90,
    "protocol": "http",
}


@pytest.fixture
async def http_address() -> AsyncIterator[str]:
    server = build_server(REPOSITORY, grpc_port=0, http_port=0, allow_client_shm=True)
    async with running(server):
        (front_end,) = server.front_ends
        yield front_end.url.removeprefix("http://")


def assert_clean(result: PerfAnalyzerResult, levels: list[int]) -> None:
    assert result.concurrencies == levels
    assert result.errors == []
    for row in result.rows:
        assert row.throughput > 0, row
        assert 0 < row.p50_us <= row.p99_us, row


async def test_simple_over_http_at_concurrency_1_to_64(http_address: str) -> None:
    result = await run_perf_analyzer(http_address, "simple", concurrency=(1, 64, 21), **BOUNDS)
    assert_clean(result, [1, 22, 43, 64])


async def test_simple_over_http_with_system_shared_memory(http_address: str) -> None:
    result = await run_perf_analyzer(
        http_address, "simple", concurrency=(1, 16, 15), extra=["--shared-memory=system"],
        **BOUNDS,
    )  # fmt: skip
    assert_clean(result, [1, 16])
