"""perf_analyzer (Triton's own load tool) against asyncinfer's inference service and against the
bare baseline of the benchmarks: every concurrency level measured, no request failed.

perf_analyzer is installed by `make perf-analyzer` (.venv-pa; `make test` depends on it); without
it these tests fail with a message saying how to install it. Runs are bounded by short windows,
few trials and a timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinfer._perf_analyzer import PerfAnalyzerFailed, PerfAnalyzerResult, run_perf_analyzer
from asyncinfer.inference.app import build_server
from asyncinfer.testing import running

from .._bench import harness, peers

REPOSITORY = Path(__file__).resolve().parents[2] / "examples" / "model_repository"
# These tests check behaviour, not speed: short windows, and a stability bound (1000 %) that any
# measurement on a busy machine meets, so a sweep is never cut short as "unstable".
BOUNDS: dict[str, Any] = {
    "measurement_interval_ms": 400,
    "stability_percent": 1000,
    "max_trials": 4,
    "kill_after": 90,
}


@pytest.fixture
async def asyncinfer_url() -> AsyncIterator[str]:
    async with running(build_server(REPOSITORY, grpc_port=0)) as address:
        yield address


@pytest.fixture(scope="module")
def bare_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = harness.start_server(peers.bare_spec("simple"), tmp_path_factory.mktemp("logs"))
    yield server.address
    server.stop()


def assert_clean(result: PerfAnalyzerResult, levels: list[int]) -> None:
    assert result.concurrencies == levels
    assert result.errors == []
    for row in result.rows:
        assert row.throughput > 0, row
        assert 0 < row.p50_us <= row.p99_us, row


async def test_simple_at_concurrency_1_to_64(asyncinfer_url: str) -> None:
    result = await run_perf_analyzer(asyncinfer_url, "simple", concurrency=(1, 64, 21), **BOUNDS)
    assert_clean(result, [1, 22, 43, 64])


async def test_custom_identity_int32_at_concurrency_1_to_64(asyncinfer_url: str) -> None:
    result = await run_perf_analyzer(
        asyncinfer_url, "custom_identity_int32", concurrency=(1, 64, 21),
        shapes={"INPUT0": [16384]}, **BOUNDS,
    )  # fmt: skip
    assert_clean(result, [1, 22, 43, 64])


async def test_bare_baseline_at_concurrency_1_and_16(bare_url: str) -> None:
    result = await run_perf_analyzer(bare_url, "simple", concurrency=(1, 16, 15), **BOUNDS)
    assert_clean(result, [1, 16])


async def test_failure_raises_with_perf_analyzers_message(asyncinfer_url: str) -> None:
    with pytest.raises(PerfAnalyzerFailed, match="Request for unknown model") as caught:
        await run_perf_analyzer(asyncinfer_url, "no_such_model", **BOUNDS)
    assert "failed to get model metadata" in caught.value.output


async def test_unstable_measurement_is_retried_once_then_fails(bare_url: str) -> None:
    # A 0 % stability bound can never be met: every window counts as unstable.
    unmeetable = {**BOUNDS, "stability_percent": 0, "max_trials": 3, "measurement_interval_ms": 200}
    with pytest.raises(PerfAnalyzerFailed, match=r"after 2 run\(s\)") as caught:
        await run_perf_analyzer(bare_url, "simple", concurrency=(1, 16, 15), **unmeetable)
    assert "Failed to obtain stable measurement" in caught.value.output
