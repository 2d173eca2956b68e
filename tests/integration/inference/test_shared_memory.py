"""tritonclient's shared-memory utilities driving the system and CUDA shm extensions.

Regions are POSIX shared memory created by tritonclient.utils.shared_memory; the server maps
them by key. TRITON-COMPAT Part B.10 and issue 5's bad input.
"""

from __future__ import annotations

import base64
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import (
    InferenceServerException,
    serialize_byte_tensor,
    serialized_byte_size,
)

from asyncinfer.inference.app import build_server

from .inference_servers import REPOSITORY, ThreadedServer

PID = os.getpid()
#: What tritonclient's register_cuda_shared_memory takes: a base64 cudaIpcMemHandle_t (64 bytes).
HANDLE = base64.b64encode(bytes(64))


@pytest.fixture(scope="module")
def shm_url() -> Iterator[str]:
    factory = lambda: build_server(REPOSITORY, grpc_port=0, allow_client_shm=True)  # noqa: E731
    with ThreadedServer(factory) as address:
        yield address


@pytest.fixture
def client(shm_url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(shm_url) as client:
        client.unregister_system_shared_memory()
        client.unregister_cuda_shared_memory()
        yield client
        client.unregister_system_shared_memory()


@pytest.fixture
def regions() -> Iterator[dict[str, object]]:
    """Client-owned regions: 'in' (two 64-byte inputs), 'out' (two 64-byte outputs), 'big'."""
    handles = {
        name: shm.create_shared_memory_region(name, f"/asyncinfer_{name}_{PID}", size)
        for name, size in (("in", 128), ("out", 128), ("big", 4096))
    }
    yield handles
    for handle in handles.values():
        shm.destroy_shared_memory_region(handle)


def _key(name: str) -> str:
    return f"/asyncinfer_{name}_{PID}"


def _in(name: str, region: str, size: int, offset: int, datatype: str = "INT32") -> Any:
    tensor = grpcclient.InferInput(name, [1, 16], datatype)
    tensor.set_shared_memory(region, size, offset=offset)
    return tensor


def _out(name: str, region: str | None = None, size: int = 0, offset: int = 0) -> Any:
    output = grpcclient.InferRequestedOutput(name)
    if region is not None:
        output.set_shared_memory(region, size, offset=offset)
    return output


def _register(
    client: grpcclient.InferenceServerClient, *names: str, sizes: dict[str, int] | None = None
) -> None:
    for name in names:
        size = (sizes or {}).get(name, {"in": 128, "out": 128, "big": 4096}[name])
        client.register_system_shared_memory(name, _key(name), size)


def test_inputs_and_outputs_in_regions_with_offsets(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, np.int32)
    shm.set_shared_memory_region(regions["in"], [a, b])  # a at 0, b at 64
    _register(client, "in", "out")
    status = client.get_system_shared_memory_status()
    assert {r.name: (r.key, r.byte_size) for r in status.regions.values()} == {
        "in": (_key("in"), 128),
        "out": (_key("out"), 128),
    }
    result = client.infer(
        "simple",
        [_in("INPUT0", "in", 64, 0), _in("INPUT1", "in", 64, 64)],
        outputs=[_out("OUTPUT0", "out", 64, 64), _out("OUTPUT1", "out", 64, 0)],
    )
    response = result.get_response()
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("OUTPUT0", "INT32", [1, 16]),
        ("OUTPUT1", "INT32", [1, 16]),
    ]
    assert list(response.raw_output_contents) == [b"", b""]  # written to the regions instead
    total = shm.get_contents_as_numpy(regions["out"], np.int32, [1, 16], offset=64)
    diff = shm.get_contents_as_numpy(regions["out"], np.int32, [1, 16], offset=0)
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(diff, a - b)
    client.unregister_system_shared_memory("in")
    assert list(client.get_system_shared_memory_status().regions) == ["out"]


def test_bytes_tensors_in_shared_memory(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    a = np.array([[str(i).encode() for i in range(16)]], dtype=np.object_)
    b = np.array([[b"1"] * 16], dtype=np.object_)
    a_bytes, b_bytes = serialize_byte_tensor(a), serialize_byte_tensor(b)
    shm.set_shared_memory_region(regions["big"], [a_bytes, b_bytes])
    sums = np.array([[str(i + 1).encode() for i in range(16)]], dtype=np.object_)
    diffs = np.array([[str(i - 1).encode() for i in range(16)]], dtype=np.object_)
    out0 = serialized_byte_size(serialize_byte_tensor(sums))
    out1 = serialized_byte_size(serialize_byte_tensor(diffs))
    a_size, b_size = serialized_byte_size(a_bytes), serialized_byte_size(b_bytes)
    _register(client, "big", "out", sizes={"out": 128})
    client.unregister_system_shared_memory("out")
    out_handle = shm.create_shared_memory_region("o2", _key("o2"), out0 + out1)
    try:
        client.register_system_shared_memory("out", _key("o2"), out0 + out1)
        inputs = [
            _in("INPUT0", "big", a_size, 0, "BYTES"),
            _in("INPUT1", "big", b_size, a_size, "BYTES"),
        ]
        client.infer(
            "simple_string",
            inputs,
            outputs=[_out("OUTPUT0", "out", out0, 0), _out("OUTPUT1", "out", out1, out0)],
        )
        got0 = shm.get_contents_as_numpy(out_handle, np.object_, [1, 16], offset=0)
        got1 = shm.get_contents_as_numpy(out_handle, np.object_, [1, 16], offset=out0)
        assert got0.tolist() == sums.tolist() and got1.tolist() == diffs.tolist()
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(out_handle)


def test_reregister_with_other_keys_and_sizes(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    _register(client, "in", "out")
    client.unregister_system_shared_memory()
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    shm.set_shared_memory_region(regions["big"], [a, a], offset=1024)
    # The same names, now on other keys with other sizes.
    client.register_system_shared_memory("in", _key("big"), 4096)
    client.register_system_shared_memory("out", _key("in"), 128)
    client.infer(
        "simple",
        [_in("INPUT0", "in", 64, 1024), _in("INPUT1", "in", 64, 1088)],
        outputs=[_out("OUTPUT0", "out", 64, 0), _out("OUTPUT1", "out", 64, 64)],
    )
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(regions["in"], np.int32, [1, 16]), a * 2
    )
    status = client.get_system_shared_memory_status("in")
    assert status.regions["in"].key == _key("big") and status.regions["in"].byte_size == 4096


def test_mixed_raw_and_shm_and_switching_an_output(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), np.int32)
    shm.set_shared_memory_region(regions["in"], [a])
    _register(client, "in", "out")
    raw_b = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
    raw_b.set_data_from_numpy(b)
    inputs = [_in("INPUT0", "in", 64, 0), raw_b]
    for round_ in range(2):
        in_shm = round_ == 0
        outputs = [_out("OUTPUT0", "out", 64, 0) if in_shm else _out("OUTPUT0"), _out("OUTPUT1")]
        result = client.infer("simple", inputs, outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
        if in_shm:
            assert result.get_response().raw_output_contents[0] == b""
            got = shm.get_contents_as_numpy(regions["out"], np.int32, [1, 16])
            np.testing.assert_array_equal(got, a + b)
        else:
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def _error(call: Callable[[], object]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_bad_shared_memory_requests_answer_tritons_texts(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    _register(client, "in", "out")
    a_raw = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
    a_raw.set_data_from_numpy(np.zeros((1, 16), np.int32))
    cases = {
        "Invalid offset + byte size for shared memory region: 'in'": (
            [_in("INPUT0", "in", 64, 96), a_raw], None),
        "Invalid offset for shared memory region: 'in'": (
            [_in("INPUT0", "in", 64, 128), a_raw], None),
        "Unable to find shared memory region: 'nope'": (
            [_in("INPUT0", "nope", 64, 0), a_raw], None),
        "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60": (
            [_in("INPUT0", "in", 60, 0), a_raw], None),
        "overlap those of output 'OUTPUT0' [0, 64)": (
            [_in("INPUT0", "in", 64, 0), a_raw],
            [_out("OUTPUT0", "out", 64, 0), _out("OUTPUT1", "out", 64, 32)]),
        "should be at least 64 bytes to hold the results": (
            [_in("INPUT0", "in", 64, 0), a_raw], [_out("OUTPUT0", "out", 32, 0)]),
    }  # fmt: skip
    for message, (inputs, outputs) in cases.items():
        error = _error(functools.partial(client.infer, "simple", inputs, outputs=outputs))
        assert error.status() == "StatusCode.INVALID_ARGUMENT", message
        assert message in error.message()
    # The server keeps serving after all of it.
    result = client.infer("simple", [_in("INPUT0", "in", 64, 0), a_raw])
    assert result.as_numpy("OUTPUT0").shape == (1, 16)


def _refusal(client: grpcclient.InferenceServerClient, name: str, key: str, size: int) -> Any:
    error = _error(lambda: client.register_system_shared_memory(name, key, size))
    return error.status().removeprefix("StatusCode."), error.message()


def test_registration_checks_come_in_tritons_order_with_its_texts(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    _register(client, "in")
    reserved = "/triton_python_backend_shm_region_x"  # refused whether it exists or not
    assert _refusal(client, "x", "//", 64) == (
        "INVALID_ARGUMENT",
        "cannot register shared memory region 'x' - invalid shm key '//'",
    )
    assert _refusal(client, "x", reserved, 64) == (
        "INVALID_ARGUMENT",
        f"cannot register shared memory region 'x' with key '{reserved}' as the key contains "
        "the reserved prefix 'triton_python_backend_shm_region_'",
    )
    # The open comes before any size check, byte_size 0 included.
    for size in (64, 0):
        assert _refusal(client, "x", "/no_such_key_here", size) == (
            "INTERNAL",
            "Unable to open shared memory region: '/no_such_key_here'",
        )
    for key in ("/a/../b", "/sem.lock", "../etc/passwd"):  # never opened: a failed open
        status, message = _refusal(client, "x", key, 64)
        assert status == "INTERNAL"
        assert message.startswith(f"Unable to open shared memory region: '{key}' (")
    for name in ("x", "in"):  # invalid args before "already in manager"
        assert _refusal(client, name, _key("in"), 4096) == (
            "INVALID_ARGUMENT",
            f"failed to register shared memory region '{name}': invalid args",
        )
    assert _refusal(client, "in", _key("out"), 64) == (
        "ALREADY_EXISTS",
        "shared memory region 'in' already in manager",
    )
    assert sorted(client.get_system_shared_memory_status().regions) == ["in"]
    client.unregister_system_shared_memory("never_registered")  # unknown names are fine


def test_server_metadata_lists_system_shm_when_allowed(
    client: grpcclient.InferenceServerClient,
) -> None:
    assert "system_shared_memory" in client.get_server_metadata().extensions


def test_cuda_register_fails_clearly_without_cuda(client: grpcclient.InferenceServerClient) -> None:
    from asyncinfer.shm.cuda import cuda_unavailable_reason

    if not cuda_unavailable_reason():
        pytest.skip("CUDA is available here; the GPU path is tested in tests/unit/shm/test_cuda.py")
    error = _error(lambda: client.register_cuda_shared_memory("gpu", HANDLE, 0, 64))
    assert error.status() == "StatusCode.FAILED_PRECONDITION"
    assert "CUDA is not available: " in error.message()
    client.unregister_cuda_shared_memory()
    assert len(client.get_cuda_shared_memory_status().regions) == 0


def test_without_allow_client_shm_register_and_unregister_are_unimplemented(
    url: str, regions: dict[str, object]
) -> None:
    disabled = (
        "Client shared memory is disabled. Start the server with '--allow-client-shm=true' "
        "to enable."
    )
    with grpcclient.InferenceServerClient(url) as client:
        calls = (
            lambda: client.register_system_shared_memory("in", _key("in"), 128),
            client.unregister_system_shared_memory,
            lambda: client.unregister_system_shared_memory("in"),
            lambda: client.register_cuda_shared_memory("gpu", HANDLE, 0, 64),
            client.unregister_cuda_shared_memory,
            lambda: client.unregister_cuda_shared_memory("gpu"),
        )
        for call in calls:
            error = _error(call)
            assert (error.status(), error.message()) == ("StatusCode.UNIMPLEMENTED", disabled)
        assert len(client.get_system_shared_memory_status().regions) == 0
        assert len(client.get_cuda_shared_memory_status().regions) == 0
        extensions = client.get_server_metadata().extensions
        assert "system_shared_memory" not in extensions
        assert "cuda_shared_memory" not in extensions


def test_with_allow_client_shm_unregister_all_succeeds_with_nothing_registered(
    shm_url: str,
) -> None:
    with grpcclient.InferenceServerClient(shm_url) as client:
        for _ in range(2):
            client.unregister_system_shared_memory()
            client.unregister_cuda_shared_memory()
        assert len(client.get_system_shared_memory_status().regions) == 0


_SLOW_CONFIG = """name: "slow_identity"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""
_SLOW_MODEL = """import asyncio
from asyncinfer.inference.python_model import Response, Tensor


class Model:
    async def execute(self, requests):
        await asyncio.sleep(0.5)  # the test unregisters the input region meanwhile
        return [Response([Tensor("OUTPUT0", r.input("INPUT0").as_numpy())]) for r in requests]
"""


def _mappings(key: str | None = None) -> int:
    """Lines of /proc/self/maps (only those mapping ``/dev/shm<key>`` when a key is given)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if key is None or line.rstrip().endswith(f"/dev/shm{key}"))


def _descriptors(key: str) -> int:
    """This process's open descriptors on ``/dev/shm<key>``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == f"/dev/shm{key}"
        except OSError:
            continue  # closed meanwhile
    return count


def test_a_region_in_use_is_not_closed_under_the_request(
    tmp_path: Path, regions: dict[str, object]
) -> None:
    model = tmp_path / "slow_identity"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(_SLOW_CONFIG)
    (model / "1" / "model.py").write_text(_SLOW_MODEL)
    factory = lambda: build_server(tmp_path, grpc_port=0, allow_client_shm=True)  # noqa: E731
    data = np.arange(1024, dtype=np.float32)
    shm.set_shared_memory_region(regions["big"], [data])
    client_maps = _mappings(_key("big"))  # the client's own; client and server share a process
    client_fds = _descriptors(_key("big"))
    with ThreadedServer(factory) as address, grpcclient.InferenceServerClient(address) as client:
        client.register_system_shared_memory("in", _key("big"), 4096)
        tensor = grpcclient.InferInput("INPUT0", [1024], "FP32")
        tensor.set_shared_memory("in", 4096)
        done: list[object] = []
        client.async_infer(
            "slow_identity", [tensor], lambda result, error: done.append(result or error)
        )
        time.sleep(0.2)  # the request is inside the model, holding its lease on "in"
        client.unregister_system_shared_memory()
        assert len(client.get_system_shared_memory_status().regions) == 0
        # Unregistered, but still open for the running request (read through its descriptor:
        # the server never maps a client's region).
        assert _descriptors(_key("big")) == client_fds + 1
        assert _mappings(_key("big")) == client_maps
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        (result,) = done
        assert isinstance(result, grpcclient.InferResult), result
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
        assert _descriptors(_key("big")) == client_fds  # the last lease returned: closed


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_register_and_unregister_over_grpc_do_not_leak(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    client.register_system_shared_memory("warm", _key("in"), 128)  # let lazy state settle
    client.unregister_system_shared_memory()
    maps_before, fds_before = _mappings(), _open_fds()
    for i in range(300):
        client.register_system_shared_memory(f"r{i % 2}", _key("in" if i % 3 else "big"), 128)
        if i % 2:
            client.unregister_system_shared_memory("" if i % 4 == 1 else "r0")
            client.unregister_system_shared_memory()
        with pytest.raises(InferenceServerException):
            client.register_system_shared_memory("bad", _key("in"), 1 << 20)  # out of bounds
    client.unregister_system_shared_memory()
    assert (_mappings(), _open_fds()) == (maps_before, fds_before)


def test_stream_infer_with_shared_memory(
    client: grpcclient.InferenceServerClient, regions: dict[str, object]
) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    shm.set_shared_memory_region(regions["in"], [a, a])
    _register(client, "in", "out")
    results: list[object] = []
    client.start_stream(callback=lambda result, error: results.append(result or error))
    try:
        for round_ in range(3):
            client.async_stream_infer(
                "simple",
                [_in("INPUT0", "in", 64, 0), _in("INPUT1", "in", 64, 64)],
                outputs=[_out("OUTPUT0", "out", 64, 0), _out("OUTPUT1", "out", 64, 64)],
                request_id=str(round_),
            )
    finally:
        client.stop_stream()  # waits for the stream to end
    assert [r.get_response().id for r in results] == ["0", "1", "2"]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(regions["out"], np.int32, [1, 16]), a * 2
    )
