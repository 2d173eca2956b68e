"""perf_analyzer against the dynamically batched ONNX model (mlp_onnx), concurrency 1 to 64:
every level measured, no request failed, and perf_analyzer's server-side statistics (read from
ModelStatistics) add up: inferences == successful requests, fewer executions under load."""

from __future__ import annotations

import re
from typing import Any

import pytest

from asyncinfer._perf_analyzer import run_perf_analyzer

# Short windows, loose stability: these tests check behaviour, not speed.
BOUNDS: dict[str, Any] = {
    "measurement_interval_ms": 500,
    "stability_percent": 100,
    "max_trials": 6,
    "kill_after": 150,
}
SERVER = re.compile(
    r"Inference count: (\d+)\s+Execution count: (\d+)\s+Successful request count: (\d+)"
)


@pytest.mark.timeout(200)
async def test_batched_onnx_model_at_concurrency_1_to_64(url: str) -> None:
    result = await run_perf_analyzer(url, "mlp_onnx", concurrency=(1, 64, 21), **BOUNDS)
    assert result.concurrencies == [1, 22, 43, 64]
    assert result.errors == []
    for row in result.rows:
        assert row.throughput > 0, row
    server = [tuple(int(n) for n in match) for match in SERVER.findall(result.output)]
    assert len(server) == 4, result.output[-3000:]
    for inferences, executions, successes in server:
        assert inferences == successes > 0  # every request is one item (batch size 1)
        assert 0 < executions <= inferences
    # Under load the batcher forms batches: fewer executions than inferences at 64 clients.
    inferences, executions, _ = server[-1]
    assert executions < inferences
