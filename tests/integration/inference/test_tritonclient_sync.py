"""tritonclient.grpc (blocking client) against the example repository: TRITON-COMPAT Part B."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer import logs

MODELS = [
    "bls_add_sub",
    "classifier_onnx",
    "custom_identity_int32",
    "densenet_onnx",
    "ensemble_classify",
    "identity_fp32",
    "mlp_onnx",
    "postprocess",
    "preprocess",
    "repeat_int32",
    "simple",
    "simple_dyna_sequence",
    "simple_identity",
    "simple_int8",
    "simple_sequence",
    "simple_string",
    "simple_string_dyna_sequence",
    "triton_add_sub",
    "triton_auto_complete",
    "triton_bls",
    "triton_bls_async",
    "triton_metrics",
    "triton_repeat",
]


@pytest.fixture
def client(url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(url) as client:
        yield client


def _inputs(datatype: str, a: np.ndarray, b: np.ndarray) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_server_metadata_name_is_triton(client: grpcclient.InferenceServerClient) -> None:
    metadata = client.get_server_metadata()
    assert metadata.name == "triton"
    assert set(metadata.extensions) == {
        "classification",
        "model_configuration",
        "model_repository",
        "statistics",
    }
    assert client.is_server_live() and client.is_server_ready()


def test_every_example_model_is_ready_with_version_1(
    client: grpcclient.InferenceServerClient,
) -> None:
    for name in MODELS:
        assert client.is_model_ready(name)
        assert client.is_model_ready(name, "1")
        assert list(client.get_model_metadata(name).versions) == ["1"]


def test_model_ready_is_false_not_an_error_for_unknown_models(
    client: grpcclient.InferenceServerClient,
) -> None:
    assert client.is_model_ready("no_such_model") is False
    assert client.is_model_ready("simple", "7") is False


def test_unknown_model_metadata_fails_with_triton_text(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert "Request for unknown model: 'no_such_model' is not found" in info.value.message()
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_metadata_reports_batch_dimension(client: grpcclient.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("simple")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("INPUT0", "INT32", [-1, 16]),
        ("INPUT1", "INT32", [-1, 16]),
    ]
    assert [t.name for t in metadata.outputs] == ["OUTPUT0", "OUTPUT1"]


def test_config_name_and_statistics_entry(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("simple").config
    assert config.name == "simple" and config.max_batch_size == 8
    assert len(client.get_inference_statistics("simple").model_stats) == 1
    assert len(client.get_inference_statistics().model_stats) == len(MODELS)


def test_statistics_count_inferences(client: grpcclient.InferenceServerClient) -> None:
    before = client.get_inference_statistics("simple").model_stats[0].inference_count
    a = np.ones((2, 16), np.int32)
    client.infer("simple", _inputs("INT32", a, a))
    after = client.get_inference_statistics("simple").model_stats[0]
    assert after.inference_count == before + 2
    assert after.inference_stats.success.count >= 1


def test_simple_sum_and_difference(client: grpcclient.InferenceServerClient) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, np.int32)
    result = client.infer("simple", _inputs("INT32", a, b))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.as_numpy("OUTPUT0").dtype == np.int32


def test_simple_int8_wraps_like_int8(client: grpcclient.InferenceServerClient) -> None:
    a = np.array([[127, -128, 5] + [0] * 13], np.int8)
    b = np.array([[1, 1, 7] + [0] * 13], np.int8)
    result = client.infer("simple_int8", _inputs("INT8", a, b))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_simple_string_canonical_decimal_text(client: grpcclient.InferenceServerClient) -> None:
    a = np.array([[str(i).encode() for i in range(16)]], dtype=np.object_)
    b = np.array([[b"1"] * 16], dtype=np.object_)
    result = client.infer("simple_string", _inputs("BYTES", a, b))
    assert list(result.as_numpy("OUTPUT0")[0]) == [str(i + 1).encode() for i in range(16)]
    assert list(result.as_numpy("OUTPUT1")[0]) == [str(i - 1).encode() for i in range(16)]
    assert result.as_numpy("OUTPUT1")[0][0] == b"-1"


def test_simple_identity_returns_bytes_exactly(client: grpcclient.InferenceServerClient) -> None:
    data = np.array([[b"a\x00b", b"\xff\xfe", b"", "é".encode()]], dtype=np.object_)
    tensor = grpcclient.InferInput("INPUT0", [1, 4], "BYTES")
    tensor.set_data_from_numpy(data)
    result = client.infer("simple_identity", [tensor])
    assert list(result.as_numpy("OUTPUT0")[0]) == list(data[0])


def test_custom_identity_int32_keeps_shape(client: grpcclient.InferenceServerClient) -> None:
    data = np.arange(3 * 1000, dtype=np.int32).reshape(3, 1000)
    tensor = grpcclient.InferInput("INPUT0", [3, 1000], "INT32")
    tensor.set_data_from_numpy(data)
    result = client.infer("custom_identity_int32", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


def test_requested_outputs_come_in_request_order_only(
    client: grpcclient.InferenceServerClient,
) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    outputs = [grpcclient.InferRequestedOutput("OUTPUT1")]
    response = client.infer("simple", _inputs("INT32", a, a), outputs=outputs).get_response()
    assert [o.name for o in response.outputs] == ["OUTPUT1"]
    assert len(response.raw_output_contents) == 1
    outputs = [
        grpcclient.InferRequestedOutput("OUTPUT1"),
        grpcclient.InferRequestedOutput("OUTPUT0"),
    ]
    result = client.infer("simple", _inputs("INT32", a, a), outputs=outputs)
    assert [o.name for o in result.get_response().outputs] == ["OUTPUT1", "OUTPUT0"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + a)


def test_all_outputs_in_config_order_when_none_requested(
    client: grpcclient.InferenceServerClient,
) -> None:
    a = np.ones((1, 16), np.int32)
    response = client.infer("simple", _inputs("INT32", a, a)).get_response()
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]


def test_request_id_is_echoed(client: grpcclient.InferenceServerClient) -> None:
    a = np.ones((1, 16), np.int32)
    assert (
        client.infer("simple", _inputs("INT32", a, a), request_id="r-42").get_response().id
        == "r-42"
    )


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_work(client: grpcclient.InferenceServerClient, algorithm: str) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    result = client.infer("simple", _inputs("INT32", a, a), compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + a)


def test_one_hundred_fresh_channels(url: str) -> None:
    keepalive = grpcclient.KeepAliveOptions(keepalive_time_ms=2**31 - 1, keepalive_timeout_ms=20000)
    data = np.arange(16, dtype=np.int32).reshape(1, 16)
    for _ in range(100):
        client = grpcclient.InferenceServerClient(
            url,
            keepalive_options=keepalive,
            channel_args=[
                ("grpc.max_send_message_length", 1024 * 1024),
                ("grpc.max_receive_message_length", 1024 * 1024),
            ],
        )
        tensor = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
        tensor.set_data_from_numpy(data)
        result = client.infer("custom_identity_int32", [tensor])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
        client.close()


def test_bad_version_string(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("simple", "wrong_specification")
    assert (
        "failed to get model version from specified version string 'wrong_specification'"
        in info.value.message()
    )
    a = np.ones((1, 16), np.int32)
    with pytest.raises(InferenceServerException) as info:
        client.infer("simple", _inputs("INT32", a, a), model_version="wrong_specification")
    assert "failed to get model version from specified version string" in info.value.message()


def test_unknown_version(client: grpcclient.InferenceServerClient) -> None:
    a = np.ones((1, 16), np.int32)
    with pytest.raises(InferenceServerException) as info:
        client.infer("simple", _inputs("INT32", a, a), model_version="3")
    assert "'simple' version 3 is not found" in info.value.message()


def test_classification_top_k(client: grpcclient.InferenceServerClient) -> None:
    a = np.array([[5, 1, 9, 3] + [0] * 12], np.int32)
    b = np.zeros((1, 16), np.int32)
    outputs = [grpcclient.InferRequestedOutput("OUTPUT0", class_count=3)]
    result = client.infer("simple", _inputs("INT32", a, b), outputs=outputs)
    assert list(result.as_numpy("OUTPUT0")[0]) == [b"9.000000:2", b"5.000000:0", b"3.000000:3"]


def test_trace_settings_read_as_started(client: grpcclient.InferenceServerClient) -> None:
    expected = {
        "trace_file": [""],
        "trace_level": ["OFF"],
        "trace_rate": ["1000"],
        "trace_count": ["-1"],
        "log_frequency": ["0"],
        "trace_mode": ["opentelemetry"],
    }
    for model in (None, "simple"):
        settings = client.get_trace_settings(model_name=model, as_json=True)["settings"]
        assert {key: value["value"] for key, value in settings.items()} == expected
    cleared = client.update_trace_settings(model_name="simple", settings={"trace_rate": None})
    assert list(cleared.settings["trace_rate"].value) == ["1000"]
    with pytest.raises(InferenceServerException) as info:
        client.update_trace_settings(settings={"trace_levels": ["OFF"]})
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown trace setting 'trace_levels'" in info.value.message()
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
        client.get_trace_settings(model_name="nope")


def test_log_settings_change_at_run_time(client: grpcclient.InferenceServerClient) -> None:
    # The server runs in this process (a thread): its logging setup is this process's.
    before = logs.settings()
    logs.configure(verbose=0, format="json")
    try:
        settings = client.get_log_settings(as_json=True)["settings"]
        assert {key: next(iter(value.values())) for key, value in settings.items()} == {
            "log_file": "",
            "log_info": True,
            "log_warning": True,
            "log_error": True,
            "log_verbose_level": 0,
            "log_format": "json",
        }
        changed = client.update_log_settings(
            settings={"log_verbose_level": 1, "log_format": "text", "log_info": False}
        )
        assert changed.settings["log_verbose_level"].uint32_param == 1
        assert changed.settings["log_format"].string_param == "text"
        assert changed.settings["log_info"].bool_param is False
        assert logs.settings() == {
            "verbose": 1,
            "format": "text",
            "file": "",
            "info": False,
            "warning": True,
            "error": True,
        }
        with pytest.raises(InferenceServerException) as info:
            client.update_log_settings(settings={"log_format": "ISO8601"})
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "'log_format' must be one of ['json', 'text']" in info.value.message()
    finally:
        logs.configure(**(before or {}))


def test_requests_over_grpcio_default_4_mib_limit(client: grpcclient.InferenceServerClient) -> None:
    # Triton's limits are INT32_MAX both ways; 8 MiB each way must pass.
    data = np.arange(2 * 1024 * 1024, dtype=np.int32).reshape(1, -1)
    tensor = grpcclient.InferInput("INPUT0", list(data.shape), "INT32")
    tensor.set_data_from_numpy(data)
    result = client.infer("custom_identity_int32", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


def test_sync_client_stream_echoes_ids(url: str) -> None:
    received: list[tuple[Any, Any]] = []
    with grpcclient.InferenceServerClient(url) as client:
        client.start_stream(callback=lambda result, error: received.append((result, error)))
        for i in range(5):
            a = np.full((1, 16), i, np.int32)
            client.async_stream_infer("simple", _inputs("INT32", a, a), request_id=f"s{i}")
        client.async_stream_infer("no_such_model", _inputs("INT32", a, a), request_id="bad")
        client.stop_stream()  # half-closes and waits for the server to end the stream
    assert [r.get_response().id for r, e in received[:5]] == [f"s{i}" for i in range(5)]
    assert received[5][0] is None and "Request for unknown model" in str(received[5][1])
