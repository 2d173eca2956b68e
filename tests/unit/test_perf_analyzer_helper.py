"""asyncinfer._perf_analyzer: finding the binary, its environment, reading its CSV."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncinfer import _perf_analyzer as pa

# The header and a row as perf_analyzer 2.51 writes them with -f FILE --verbose-csv.
CSV = (
    "Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency,p90 latency,"
    "p95 latency,p99 latency,Avg latency,request/response,response wait\n"
    "1,1382.59,2,1,680,824,917,1243,718,7,694\n"
    "16,3625.02,2,1,3686,5903,6337,9989,4410,3,4398\n"
)


def test_csv_rows_become_figures() -> None:
    rows = pa.parse_csv(CSV)
    assert [row.concurrency for row in rows] == [1, 16]
    assert rows[0] == pa.PerfAnalyzerRow(1, 1382.59, 680, 824, 917, 1243, 718)
    assert rows[1].throughput == 3625.02 and rows[1].p99_us == 9989


def test_result_rows_by_concurrency_and_error_lines() -> None:
    result = pa.PerfAnalyzerResult(pa.parse_csv(CSV), "Thread [0] had error: boom\n", 1, ())
    assert result.row(16).p50_us == 3686
    with pytest.raises(KeyError, match="no row for concurrency 64"):
        result.row(64)
    assert result.errors == ["Thread [0] had error: boom"]


def test_configured_binary_must_be_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_binary = tmp_path / "perf_analyzer"
    not_a_binary.write_text("")
    monkeypatch.setenv(pa.ENV_BINARY, str(not_a_binary))
    with pytest.raises(
        pa.PerfAnalyzerNotFound, match=r"ASYNCINFER_PERF_ANALYZER=.* is not an executable"
    ):
        pa.find_perf_analyzer()


def test_installed_binary_is_found_with_its_cuda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # `make perf-analyzer` sets up .venv-pa; a missing binary fails here with the install hint.
    monkeypatch.delenv(pa.ENV_BINARY, raising=False)
    binary = pa.find_perf_analyzer()
    assert os.access(binary, os.X_OK)
    env = pa.perf_analyzer_env(binary)
    first = Path(env["LD_LIBRARY_PATH"].split(os.pathsep)[0])
    assert first.parts[-3:] == ("nvidia", "cuda_runtime", "lib")
    assert any(first.glob("libcudart.so*"))


def test_command_is_bounded_and_names_shapes() -> None:
    command = pa.build_command(
        Path("/pa"), "127.0.0.1:1", "m", concurrency=(1, 64, 21),
        shapes={"INPUT0": [4, 8]}, measurement_interval_ms=500, stability_percent=80,
        max_trials=4, extra=("--async",),
    )  # fmt: skip
    text = " ".join(command)
    assert "--concurrency-range 1:64:21" in text
    assert "-p 500 -s 80 --max-trials 4" in text
    assert "--shape INPUT0:4,8" in text
    assert command[-1] == "--async"


def test_levels_of_a_range() -> None:
    assert pa.levels(16) == [16]
    assert pa.levels((1, 64, 21)) == [1, 22, 43, 64]
    assert pa.levels((1, 16, 15)) == [1, 16]
