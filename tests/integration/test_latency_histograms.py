"""Latency histograms (--metrics-config histogram_latencies=true): served per model in Triton's
and asyncinfer's names with the configured buckets, summed by the supervisor of two workers so
that the counts add up to the requests served; bad flags refused at start. With two workers,
trace and log settings read as started and are not changed at run time (one worker would
change)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.testing import ServerProcess

from .inference.inference_servers import REPOSITORY
from .test_metrics import matching, scrape

FAMILIES = (
    "nv_inference_first_response_histogram_ms",
    "asyncinfer_inference_request_histogram_ms",
    "asyncinfer_inference_queue_histogram_ms",
    "asyncinfer_inference_compute_infer_histogram_ms",
)


def test_two_workers_histograms_add_up_to_the_requests() -> None:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository", str(REPOSITORY),
        "--grpc-port", "0", "--workers", "2", "--metrics-port", "0", "--allow-http", "false",
        "--metrics-config", "histogram_latencies=true",
        "--metrics-config", "histogram_buckets=0.5,1,5,50,1000",
    ]  # fmt: skip
    calls = 20
    with ServerProcess(argv, workers=2, timeout=60) as proc:
        assert proc.metrics_url
        data = np.arange(16, dtype=np.int32).reshape(1, 16)
        for _ in range(calls):  # a fresh connection each: SO_REUSEPORT spreads them
            with triton.InferenceServerClient(
                proc.address, channel_args=list(OWN_CONNECTION)
            ) as client:
                tensors = [triton.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
                for tensor in tensors:
                    tensor.set_data_from_numpy(data)
                client.infer("simple", tensors)
        with triton.InferenceServerClient(proc.address) as client:
            changes: list[tuple[Callable[..., object], dict[str, object]]] = [
                (client.update_trace_settings, {"trace_rate": "1"}),
                (client.update_log_settings, {"log_verbose_level": 1}),
            ]
            for change, settings in changes:
                with pytest.raises(InferenceServerException) as info:
                    change(settings=settings)
                assert info.value.status() == "StatusCode.FAILED_PRECONDITION"
                assert "several worker processes" in info.value.message()
            assert client.get_trace_settings(as_json=True)["settings"]["trace_rate"]["value"] == [
                "1000"
            ]
        types, samples = scrape(proc.metrics_url)
        assert proc.stop() == 0
    for family in FAMILIES:
        assert types[family] == "histogram"
        assert matching(samples, f"{family}_count", model="simple") == [calls]
        buckets = {
            dict(labels)["le"]: value
            for (name, labels), value in samples.items()
            if name == f"{family}_bucket" and dict(labels)["model"] == "simple"
        }
        assert list(buckets) == ["0.5", "1.0", "5.0", "50.0", "1000.0", "+Inf"]
        counts = list(buckets.values())
        assert counts == sorted(counts) and counts[-1] == calls  # cumulative, all counted
    # Triton's cumulative counters are still there, and agree with the histograms' sums.
    (total_us,) = matching(samples, "nv_inference_request_duration_us", model="simple")
    (total_ms,) = matching(samples, "asyncinfer_inference_request_histogram_ms_sum", model="simple")
    assert abs(total_us / 1000 - total_ms) <= 0.01 * total_ms + 1


def test_bad_metrics_config_is_refused_at_start() -> None:
    for flag, text in [
        ("summary_latencies=true", "summary quantiles cannot be summed across worker processes"),
        ("histogram_buckets=5,1", "histogram_buckets must be increasing"),
        ("histogram_latencies=maybe", "expected true or false"),
        ("colour=blue", "unknown setting"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository",
             str(REPOSITORY), "--grpc-port", "0", "--metrics-config", flag],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and text in done.stderr, done.stderr
