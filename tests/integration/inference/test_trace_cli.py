"""`asyncinfer serve --trace-config`: tritonserver's flags reach the server (spans exported over
OTLP/HTTP to a receiver run here, under the configured resource), bad flags are refused at
start with what was expected."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as triton

from asyncinfer.testing import ServerProcess
from asyncinfer.tracing.receiver import OtlpReceiver

from .inference_servers import REPOSITORY

pytest.importorskip(
    "opentelemetry.exporter.otlp.proto.http", reason="the 'otlp' extra exports the spans"
)
SERVE = [sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository", str(REPOSITORY)]


def test_serve_exports_the_spans_its_flags_ask_for() -> None:
    with OtlpReceiver() as receiver:
        flags = [
            "level=TIMESTAMPS",
            "rate=2",
            f"opentelemetry,url={receiver.url}",
            "opentelemetry,resource=service.name=triton-compatible",
            "opentelemetry,bsp_schedule_delay=50",
        ]
        argv = [*SERVE, "--grpc-port", "0", *(a for f in flags for a in ("--trace-config", f))]
        with ServerProcess(argv, timeout=60) as server:
            with triton.InferenceServerClient(server.address) as client:
                data = np.ones((1, 16), np.int32)
                tensors = [triton.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
                for tensor in tensors:
                    tensor.set_data_from_numpy(data)
                for _ in range(4):
                    client.infer("simple", tensors)
                settings = client.get_trace_settings(as_json=True)["settings"]
            assert settings["trace_rate"]["value"] == ["2"]
            receiver.wait_for(lambda spans: sum(s.name == "InferRequest" for s in spans) >= 2)
        requests = [s for s in receiver.spans if s.name == "InferRequest"]
    assert len(requests) == 2  # rate 2: every second of the 4 requests
    assert {s.service for s in requests} == {"triton-compatible"}
    assert all(s.kind == "SERVER" for s in requests)


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("mode=triton", "Triton's own trace mode (JSON trace files) is not supported"),
        ("level=SOMETIMES", "trace_level must be OFF, or one or both of TIMESTAMPS and TENSORS"),
        ("opentelemetry,colour=red", "unknown setting"),
    ],
)
def test_bad_trace_flags_are_refused_at_start(flag: str, text: str) -> None:
    done = subprocess.run(
        [*SERVE, "--grpc-port", "0", "--trace-config", flag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and text in done.stderr, done.stderr
