"""tritonclient.http (blocking client) against the example repository over the HTTP front end:
TRITON-COMPAT Part D, every endpoint, with the same answers and texts as over gRPC."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from asyncinfer import logs

PID = os.getpid()


@pytest.fixture
def client(http_url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(http_url)
    yield client
    client.close()


def _inputs(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], datatype: str = "INT32", binary: bool = True
) -> list[httpclient.InferInput]:
    inputs = []
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        tensor = httpclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.ones((1, 16), dtype=np.int32)


def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "triton"
    assert "system_shared_memory" in metadata["extensions"]
    assert {"classification", "model_repository", "statistics"} <= set(metadata["extensions"])


def test_model_ready_metadata_and_config(client: httpclient.InferenceServerClient) -> None:
    assert client.is_model_ready("simple") and client.is_model_ready("simple", "1")
    assert client.is_model_ready("no_such_model") is False
    assert client.is_model_ready("simple", "7") is False
    metadata = client.get_model_metadata("simple")
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"][0] == {"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]}
    assert client.get_model_metadata("simple", "1") == metadata
    config = client.get_model_config("simple")
    assert config["name"] == "simple" and config["max_batch_size"] == 8
    assert config["input"][0]["dims"] == [16]


def test_unknown_model_answers_404_with_the_grpc_text(
    client: httpclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "404"
    assert info.value.message() == "Request for unknown model: 'nope' is not found"
    with pytest.raises(InferenceServerException, match="'simple' version 3 is not found"):
        client.infer("simple", _inputs(A, B), model_version="3")


@pytest.mark.parametrize("binary", [True, False])
def test_simple_sum_and_difference_binary_and_json(
    client: httpclient.InferenceServerClient, binary: bool
) -> None:
    outputs = [
        httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
        httpclient.InferRequestedOutput("OUTPUT1", binary_data=not binary),
    ]
    result = client.infer("simple", _inputs(A, B, binary=binary), outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)
    names = [output["name"] for output in result.get_response()["outputs"]]
    assert names == ["OUTPUT0", "OUTPUT1"]


def test_outputs_in_request_order_and_all_when_none_requested(
    client: httpclient.InferenceServerClient,
) -> None:
    outputs = [httpclient.InferRequestedOutput("OUTPUT1")]
    only = client.infer("simple", _inputs(A, B), outputs=outputs).get_response()["outputs"]
    assert [output["name"] for output in only] == ["OUTPUT1"]
    every = client.infer("simple", _inputs(A, B)).get_response()["outputs"]
    assert [output["name"] for output in every] == ["OUTPUT0", "OUTPUT1"]


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_tensors_binary_and_json(
    client: httpclient.InferenceServerClient, binary: bool
) -> None:
    a = np.array([[str(i).encode() for i in range(16)]], dtype=np.object_)
    b = np.array([[b"1"] * 16], dtype=np.object_)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    result = client.infer("simple_string", _inputs(a, b, "BYTES", binary), outputs=outputs)
    got = [
        item if isinstance(item, bytes) else item.encode() for item in result.as_numpy("OUTPUT0")[0]
    ]
    assert got == [str(i + 1).encode() for i in range(16)]


def test_request_id_and_compression_both_ways(client: httpclient.InferenceServerClient) -> None:
    for algorithm in ("gzip", "deflate"):
        result = client.infer(
            "simple",
            _inputs(A, B),
            request_id=f"id-{algorithm}",
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,
        )
        assert result.get_response()["id"] == f"id-{algorithm}"
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)


def test_classification_top_k(client: httpclient.InferenceServerClient) -> None:
    a = np.array([[5, 1, 9, 3] + [0] * 12], np.int32)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", class_count=3)]
    result = client.infer("simple", _inputs(a, np.zeros_like(a)), outputs=outputs)
    assert list(result.as_numpy("OUTPUT0")[0]) == [b"9.000000:2", b"5.000000:0", b"3.000000:3"]


def test_statistics_for_simple_are_one_entry_that_counts(
    client: httpclient.InferenceServerClient,
) -> None:
    before = client.get_inference_statistics("simple")["model_stats"]
    assert len(before) == 1 and before[0]["name"] == "simple"
    client.infer("simple", _inputs(A, B))
    after = client.get_inference_statistics("simple", "1")["model_stats"][0]
    assert after["inference_count"] == before[0]["inference_count"] + 1
    assert isinstance(after["inference_stats"]["success"]["ns"], int)
    every = client.get_inference_statistics()["model_stats"]
    assert "simple" in {entry["name"] for entry in every}


def test_repository_index_lists_ready_models(client: httpclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    states = {entry["name"]: entry["state"] for entry in index}
    assert states["simple"] == "READY"


def test_model_control_is_refused_in_mode_none_with_the_grpc_text(
    client: httpclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("simple")
    assert "explicit model load / unload is not allowed" in info.value.message()


def test_sequence_over_http(client: httpclient.InferenceServerClient) -> None:
    results = []
    for i, value in enumerate([1, 2, 3]):
        tensor = httpclient.InferInput("INPUT", [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[value]], np.int32))
        result = client.infer(
            "simple_dyna_sequence",
            [tensor],
            sequence_id=4242,
            sequence_start=i == 0,
            sequence_end=i == 2,
        )
        results.append(int(result.as_numpy("OUTPUT").reshape(-1)[0]))
    assert results == [2, 2, 3 + 4242]


def test_system_shared_memory_inputs_and_outputs(
    client: httpclient.InferenceServerClient,
) -> None:
    client.unregister_system_shared_memory()
    handles = {
        name: shm.create_shared_memory_region(name, f"/asyncinfer_http_{name}_{PID}", 128)
        for name in ("in", "out")
    }
    try:
        shm.set_shared_memory_region(handles["in"], [A, B])
        for name in handles:
            client.register_system_shared_memory(name, f"/asyncinfer_http_{name}_{PID}", 128)
        status = client.get_system_shared_memory_status()
        assert sorted(region["name"] for region in status) == ["in", "out"]
        assert client.get_system_shared_memory_status("in")[0]["byte_size"] == 128
        inputs = _inputs(A, B)
        inputs[0].set_shared_memory("in", 64)
        inputs[1].set_shared_memory("in", 64, offset=64)
        outputs = [httpclient.InferRequestedOutput(n) for n in ("OUTPUT0", "OUTPUT1")]
        outputs[0].set_shared_memory("out", 64)
        outputs[1].set_shared_memory("out", 64, offset=64)
        result = client.infer("simple", inputs, outputs=outputs)
        sent = result.get_response()["outputs"][1]
        # Sent with no data and no parameters, as Triton's (perf_analyzer reads any output
        # parameters as binary data).
        assert sent == {"name": "OUTPUT1", "datatype": "INT32", "shape": [1, 16]}
        total = shm.get_contents_as_numpy(handles["out"], np.int32, [1, 16])
        diff = shm.get_contents_as_numpy(handles["out"], np.int32, [1, 16], offset=64)
        np.testing.assert_array_equal(total, A + B)
        np.testing.assert_array_equal(diff, A - B)
        client.unregister_system_shared_memory("in")
        assert [r["name"] for r in client.get_system_shared_memory_status()] == ["out"]
        with pytest.raises(InferenceServerException, match="'in'"):
            client.get_system_shared_memory_status("in")
    finally:
        client.unregister_system_shared_memory()
        for handle in handles.values():
            shm.destroy_shared_memory_region(handle)
    assert client.get_system_shared_memory_status() == []


def test_cuda_shared_memory_status_is_empty_and_unregister_all_succeeds(
    client: httpclient.InferenceServerClient,
) -> None:
    assert client.get_cuda_shared_memory_status() == []
    client.unregister_cuda_shared_memory()


def test_trace_settings_read_and_change_as_over_grpc(
    client: httpclient.InferenceServerClient,
) -> None:
    for model in (None, "simple"):
        settings = client.get_trace_settings(model_name=model)
        assert settings["trace_level"] == ["OFF"] and settings["trace_rate"] == "1000"
    changed = client.update_trace_settings(model_name="simple", settings={"trace_rate": "7"})
    assert changed["trace_rate"] == "7"
    assert client.get_trace_settings()["trace_rate"] == "1000"  # the server's stays
    cleared = client.update_trace_settings(model_name="simple", settings={"trace_rate": None})
    assert cleared["trace_rate"] == "1000"
    with pytest.raises(InferenceServerException) as info:
        client.update_trace_settings(settings={"trace_levels": ["OFF"]})
    assert info.value.status() == "400"
    assert "unknown trace setting 'trace_levels'" in info.value.message()
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
        client.get_trace_settings(model_name="nope")


def test_log_settings_read_and_change_as_over_grpc(
    client: httpclient.InferenceServerClient,
) -> None:
    # The server runs in this process (a thread): its logging setup is this process's.
    before = logs.settings()
    logs.configure(verbose=0, format="json")
    try:
        settings = client.get_log_settings()
        assert settings["log_info"] is True and settings["log_verbose_level"] == 0
        changed = client.update_log_settings({"log_verbose_level": 1, "log_info": False})
        assert changed["log_verbose_level"] == 1 and changed["log_info"] is False
        assert logs.settings() == {
            "verbose": 1, "format": "json", "file": "", "info": False, "warning": True,
            "error": True,
        }  # fmt: skip
        with pytest.raises(InferenceServerException) as info:
            client.update_log_settings({"log_format": "ISO8601"})
        assert info.value.status() == "400"
        assert "'log_format' must be one of ['json', 'text']" in info.value.message()
    finally:
        logs.configure(**(before or {}))


def test_decoupled_model_over_infer_says_to_stream(
    client: httpclient.InferenceServerClient,
) -> None:
    tensor = httpclient.InferInput("IN", [1], "INT32")
    tensor.set_data_from_numpy(np.array([3], np.int32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("repeat_int32", [tensor])
    assert info.value.status() == "501"
    assert "decoupled transaction policy" in info.value.message()


def test_large_binary_round_trip(client: httpclient.InferenceServerClient) -> None:
    data = np.arange(2 * 1024 * 1024, dtype=np.int32).reshape(1, -1)
    tensor = httpclient.InferInput("INPUT0", list(data.shape), "INT32")
    tensor.set_data_from_numpy(data)
    result = client.infer("custom_identity_int32", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


def test_load_infer_unload_in_explicit_mode(explicit_http_url: str) -> None:
    client = httpclient.InferenceServerClient(explicit_http_url)
    try:
        assert client.is_model_ready("simple") is False
        client.load_model("simple", config=json.dumps({"max_batch_size": 16}))
        assert client.get_model_config("simple")["max_batch_size"] == 16
        result = client.infer("simple", _inputs(A, A))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A * 2)
        client.unload_model("simple")
        assert client.is_model_ready("simple") is False
        states = {m["name"]: (m["state"], m["reason"]) for m in client.get_model_repository_index()}
        assert states["simple"] == ("UNAVAILABLE", "unloaded")
        with pytest.raises(InferenceServerException, match="failed to load 'nope'"):
            client.load_model("nope")
        with pytest.raises(InferenceServerException, match="failed to load 'simple'"):
            client.load_model("simple", config="{not json")
    finally:
        client.close()
