"""curl against the HTTP front end: health, a JSON infer, model control (load, infer, unload)
and the generate extension (one response, and server-sent events from a decoupled model)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def curl(*args: str) -> tuple[int, str]:
    """The HTTP status and body of one curl call (bounded by curl's own --max-time)."""
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-s", "--max-time", "20", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


SIMPLE = {
    "inputs": [
        {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(16))}
        for name in ("INPUT0", "INPUT1")
    ]
}


def _infer(address: str, model: str = "simple", body: dict[str, Any] = SIMPLE) -> tuple[int, str]:
    url = f"http://{address}/v2/models/{model}/infer"
    return curl("-X", "POST", url, "-H", "Content-Type: application/json", "-d", json.dumps(body))


def test_health_metadata_and_json_infer(http_url: str) -> None:
    assert curl(f"http://{http_url}/v2/health/live") == (200, "")
    assert curl(f"http://{http_url}/v2/health/ready?verbose=1") == (200, "")
    status, body = curl(f"http://{http_url}/v2")
    assert status == 200 and json.loads(body)["name"] == "triton"
    status, body = _infer(http_url)
    assert status == 200
    outputs = {output["name"]: output for output in json.loads(body)["outputs"]}
    assert outputs["OUTPUT0"]["data"] == [2 * i for i in range(16)]
    assert outputs["OUTPUT0"]["shape"] == [1, 16] and outputs["OUTPUT1"]["data"] == [0] * 16


def test_load_infer_unload(explicit_http_url: str) -> None:
    base = f"http://{explicit_http_url}/v2/repository"
    assert curl(f"http://{explicit_http_url}/v2/models/simple/ready")[0] == 400
    assert _infer(explicit_http_url)[0] == 404
    assert curl("-X", "POST", f"{base}/models/simple/load") == (200, "")
    assert curl(f"http://{explicit_http_url}/v2/models/simple/ready") == (200, "")
    assert _infer(explicit_http_url)[0] == 200
    status, body = curl("-X", "POST", f"{base}/index", "-d", '{"ready": true}')
    assert status == 200 and [m["name"] for m in json.loads(body)] == ["simple"]
    assert curl("-X", "POST", f"{base}/models/simple/unload") == (200, "")
    assert curl(f"http://{explicit_http_url}/v2/models/simple/ready")[0] == 400
    # INTERNAL over gRPC (Triton's status for a model not in the repository): 500 over HTTP.
    status, body = curl("-X", "POST", f"{base}/models/nope/load")
    assert status == 500 and "failed to load 'nope'" in json.loads(body)["error"]


def test_generate_one_response(http_url: str) -> None:
    url = f"http://{http_url}/v2/models/simple/generate"
    body = json.dumps({"INPUT0": list(range(16)), "INPUT1": [1] * 16})
    status, text = curl("-X", "POST", url, "-d", body)
    assert status == 200
    reply = json.loads(text)
    assert reply["model_name"] == "simple" and reply["OUTPUT0"] == [i + 1 for i in range(16)]
    status, text = curl("-X", "POST", url, "-d", '{"NOPE": 1}')
    assert status == 400 and "'NOPE', which is not an input" in json.loads(text)["error"]


def test_generate_stream_sends_one_event_per_response(http_url: str) -> None:
    url = f"http://{http_url}/v2/models/repeat_int32/generate_stream"
    body = json.dumps({"IN": [4, 5, 6], "DELAY": [0, 0, 0], "WAIT": 0})
    status, text = curl("-N", "-X", "POST", url, "-d", body)
    assert status == 200
    events = [json.loads(line[len("data: ") :]) for line in text.split("\n\n") if line]
    assert [(event["OUT"], event["IDX"]) for event in events] == [(4, 0), (5, 1), (6, 2)]
    status, text = curl(
        "-X", "POST", f"http://{http_url}/v2/models/repeat_int32/generate", "-d", body
    )
    assert status == 400 and "use generate_stream" in json.loads(text)["error"]
