"""bench/_framework_server.py (asyncinfer's framework around the bare server's inference) answers
`simple` as the bare server does, through tritonclient, so that _percall_probe's split of
asyncinfer's cost into framework and data plane compares the same work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from tests._bench import harness, peers


def test_framework_server_answers_simple_like_the_bare_server(tmp_path: Path) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32)
    specs = [peers.framework_spec("simple"), peers.bare_spec("simple")]
    with harness.serving(specs, tmp_path) as running:
        answers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        names: dict[str, str] = {}
        for name, server in running.items():
            inputs = [grpcclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
            inputs[0].set_data_from_numpy(a)
            inputs[1].set_data_from_numpy(b)
            with grpcclient.InferenceServerClient(server.address) as client:
                result = client.infer("simple", inputs)
                answers[name] = (result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"))
                # Only ModelInfer is the bare server's: the rest is still asyncinfer's.
                metadata = client.get_server_metadata()
                names[name] = metadata.name
    np.testing.assert_array_equal(answers["framework"][0], a + b)
    np.testing.assert_array_equal(answers["framework"][1], a - b)
    for got, want in zip(answers["framework"], answers["bare"], strict=True):
        np.testing.assert_array_equal(got, want)
    assert names["framework"] == "triton"  # asyncinfer answers as Triton does
    assert names["bare"] == "bare_triton"
