"""bench/_harness.py and bench/_infer_common.py: servers as subprocesses, JSON clients, medians.

The servers and clients here are real processes (the bare Triton baseline, the load client).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .._bench import BENCH, harness, infer_common, peers

PY = sys.executable


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.RunningServer]:
    server = harness.start_server(peers.bare_spec("simple"), tmp_path_factory.mktemp("logs"))
    yield server
    server.stop()


def test_port_fields_get_distinct_free_ports() -> None:
    command = ["srv", "--grpc={port}", "--http", "{port_http}", "--x", "1"]
    assert harness.port_fields(command) == {"port", "port_http"}
    filled, ports = harness.fill_ports(command)
    assert set(ports) == {"port", "port_http"}
    assert filled == [
        "srv",
        f"--grpc={ports['port']}",
        "--http",
        str(ports["port_http"]),
        "--x",
        "1",
    ]
    assert ports["port"] != ports["port_http"]


def test_median_skips_missing_values() -> None:
    samples: list[dict[str, Any]] = [{"a": 1.0, "b": None}, {"a": 3.0}, {"a": 2.0, "b": 5}]
    assert harness.median_of(samples, ["a", "b", "c"]) == {"a": 2.0, "b": 5, "c": None}


def test_ratio_is_none_without_both_figures() -> None:
    assert harness.ratio(3.0, 2.0) == 1.5
    assert harness.ratio(None, 2.0) is None
    assert harness.ratio(3.0, 0.0) is None


def test_run_json_takes_the_last_line() -> None:
    code = "print('warming up'); print('{\"n\": 1}'); print('{\"n\": 2}'); print()"
    assert harness.run_json([PY, "-c", code], timeout=30) == {"n": 2}


def test_run_json_reports_a_failing_client() -> None:
    code = "import sys; sys.stderr.write('no such model'); sys.exit(3)"
    with pytest.raises(harness.HarnessError, match=r"exited with 3:\nno such model"):
        harness.run_json([PY, "-c", code], timeout=30)


def test_run_json_rejects_a_last_line_that_is_not_json() -> None:
    with pytest.raises(harness.HarnessError, match="is not JSON"):
        harness.run_json([PY, "-c", "print('done')"], timeout=30)


def test_run_json_bounds_a_hanging_client() -> None:
    with pytest.raises(harness.HarnessError, match=r"ran past 0\.5 s"):
        harness.run_json([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_bound_port_is_read_from_output_and_server_answers(bare: harness.RunningServer) -> None:
    host, port = bare.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert f"listening on 127.0.0.1:{port}" in bare.log_tail()
    assert harness.triton_ready("simple", "custom_identity_int32")(bare.address)
    assert not harness.triton_ready("no_such_model")(bare.address)


def test_port_chosen_here_when_the_command_has_a_port_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = harness.ServerSpec(
        name="bare_fixed",
        command=[PY, str(BENCH / "_bare_triton.py"), "--port", "{port}"],
        ready=harness.triton_ready("simple"),
    )
    with harness.serving([spec], tmp_path) as running:
        server = running["bare_fixed"]
        assert server.log_tail().endswith(f"listening on {server.address}")
    assert server.process.poll() is not None, "serving() must stop the server on exit"


def test_server_that_dies_during_start_up_shows_its_output(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = harness.ServerSpec(
        name="dies",
        command=[PY, "-c", "print('cannot load model simple'); raise SystemExit(3)"],
        ready=harness.triton_ready("simple"),
        port_pattern=r"port (\d+)",
        start_timeout=30,
    )
    with pytest.raises(harness.HarnessError, match="cannot load model simple"):
        harness.start_server(spec, tmp_path)


def test_server_never_ready_is_stopped_after_its_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = harness.ServerSpec(
        name="silent",
        command=[PY, "-c", "import time; print('port 1', flush=True); time.sleep(60)"],
        ready=lambda address: False,
        port_pattern=r"port (\d+)",
        start_timeout=1.0,
    )
    with pytest.raises(harness.HarnessError, match="not ready within"):
        harness.start_server(spec, tmp_path)


def test_ready_checks_are_false_when_nothing_listens() -> None:
    address = f"127.0.0.1:{harness.free_port()}"
    assert not harness.triton_ready("simple")(address)
    assert not harness.grpc_health_ready()(address)


def test_load_client_measures_and_checks_replies(bare: harness.RunningServer) -> None:
    command = [
        PY, str(BENCH / "_load_client.py"), "--url", bare.address, "--concurrency", "1,4",
        "--duration", "0.2", "--warmup", "0.05", "--max-requests", "50",
    ]  # fmt: skip
    result = harness.run_json(command, timeout=60)
    levels = {level["concurrency"]: level for level in result["levels"]}
    assert set(levels) == {1, 4}
    for level in levels.values():
        assert level["errors"] == 0, level["first_error"]
        assert 0 < level["requests"] <= 50
        assert level["throughput"] > 0
        assert 0 < level["p50_ms"] <= level["p99_ms"]


def test_load_client_counts_errors(bare: harness.RunningServer) -> None:
    command = [
        PY, str(BENCH / "_load_client.py"), "--url", bare.address, "--model", "nope",
        "--duration", "0.1", "--warmup", "0", "--max-requests", "5",
    ]  # fmt: skip
    (level,) = harness.run_json(command, timeout=60)["levels"]
    assert level["requests"] == 0
    assert level["errors"] == 5
    assert "Request for unknown model: 'nope'" in level["first_error"]


def _samples() -> infer_common.Samples:
    def level(throughput: float, p99: float, errors: int = 0) -> dict[str, object]:
        first = "UNAVAILABLE: gone" if errors else None
        return {"throughput": throughput, "p50_ms": 1.0, "p99_ms": p99, "errors": errors,
                "first_error": first, "server_cpu_us_per_request": 1e6 / throughput}  # fmt: skip

    return {
        "fast": {1: [level(100, 5), level(300, 1), level(200, 3)]},
        "slow": {1: [level(50, 9), level(40, 8, errors=2), level(60, 7)]},
    }


def test_summary_takes_medians_and_adds_errors() -> None:
    summary = infer_common.summarize(_samples())
    assert summary["fast"]["1"] == {
        "throughput": 200, "p50_ms": 1.0, "p99_ms": 3, "errors": 0, "runs": 3,
        "server_cpu_us_per_request": 5000.0,
    }  # fmt: skip
    assert summary["slow"]["1"]["errors"] == 2
    assert summary["slow"]["1"]["first_error"] == "UNAVAILABLE: gone"
    assert infer_common.ratios(summary, "fast", "slow") == {"1": 4.0}
    assert infer_common.cpu_ratio(summary, "fast", "slow") == pytest.approx(0.25)
    assert infer_common.failures(summary) == ["slow c=1: UNAVAILABLE: gone"]


def test_minimum_is_none_when_a_level_has_no_ratio() -> None:
    assert infer_common.minimum({"1": 2.0, "16": 1.5}) == 1.5
    assert infer_common.minimum({"1": 2.0, "16": None}) is None


def test_peer_comparison_names_its_keys_after_the_peer() -> None:
    summary = infer_common.summarize(
        {"asyncinfer": _samples()["fast"], "triton": _samples()["slow"]}
    )
    pa: dict[str, dict[str, dict[str, object]]] = {
        "asyncinfer": {"1": {"throughput": 90.0}},
        "triton": {"1": {"error": "unstable"}},
    }
    result = infer_common.peer_comparison(summary, pa, "triton", "triton")
    assert result["ratio_vs_triton"] == {"1": 4.0} and result["ratio_vs_triton_min"] == 4.0
    assert result["server_cpu_per_request_vs_triton"] == pytest.approx(0.25)
    # A failed perf_analyzer run has no throughput: no ratio, and so no minimum.
    assert result["perf_analyzer_ratio_vs_triton"] == {"1": None}
    assert result["perf_analyzer_ratio_vs_triton_min"] is None
    assert infer_common.peer_comparison(summary, pa, "bare", "bare") == {}


def test_emit_writes_the_json_and_a_plot_beside_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(harness, "BUILD", tmp_path)
    result = {
        "c1": {"asyncinfer": {"throughput": 900.0, "p99_ms": 2.0}, "ratio": 0.9},
        "c16": {"asyncinfer": {"throughput": 2000.0, "p99_ms": 9.0}, "ratio": 0.95},
        "ratio_min": 0.9,
    }
    harness.emit(result, "demo")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"plot: {tmp_path / 'bench' / 'demo.png'}"
    assert json.loads(lines[-1]) == result
    assert json.loads((tmp_path / "bench" / "demo.json").read_text()) == result
    png = (tmp_path / "bench" / "demo.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert harness._curves(result) == {"asyncinfer": [(900.0, 2.0), (2000.0, 9.0)]}


def test_the_plot_bars_only_measured_ratios_and_draws_one_curve_per_server() -> None:
    result = {
        "duration_s": 2.0,
        "goals": {"ratio_vs_bare_min": 0.95},
        "ratio_vs_bare_min": 0.8,
        "cpu_vs_floor": 0.7,
        "load_client": {
            "asyncinfer": {
                "1": {"throughput": 10.0, "p99_ms": 1.0},
                "16": {"throughput": 30.0, "p99_ms": 4.0},
            },
            "bare": {"1": {"throughput": 12.0, "p99_ms": 1.0}},
        },
    }
    ratios = [key for key, _ in harness._leaves(result) if harness._is_ratio(key)]
    assert ratios == ["ratio_vs_bare_min", "cpu_vs_floor"]
    curves = harness._curves(result)
    assert curves == {
        "load_client.asyncinfer": [(10.0, 1.0), (30.0, 4.0)],
        "load_client.bare": [(12.0, 1.0)],
    }
