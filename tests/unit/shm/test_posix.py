"""The system shared-memory registry: keys, bounds, deferred unmap, and no leaks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.utils.shared_memory as tshm
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer.errors import AlreadyExists, Internal, InvalidArgument, NotFound
from asyncinfer.shm.posix import RegionStatus, SystemShmRegistry, check_key

SIZE = 8192


@pytest.fixture
def region() -> Iterator[tuple[str, object]]:
    key = f"/asyncinfer_test_{os.getpid()}"
    handle = tshm.create_shared_memory_region("r", key, SIZE)
    yield key, handle
    tshm.destroy_shared_memory_region(handle)


@pytest.fixture
def registry() -> Iterator[SystemShmRegistry]:
    registry = SystemShmRegistry()
    yield registry
    registry.close()
    assert registry.statistics() == {"regions": 0, "retiring": 0, "leases": 0}


def test_register_lease_status_unregister(
    region: tuple[str, object], registry: SystemShmRegistry
) -> None:
    key, handle = region
    tshm.set_shared_memory_region(handle, [np.arange(16, dtype=np.int32)], offset=64)
    registry.register("in", key, 0, SIZE)
    assert registry.status() == [RegionStatus("in", key, 0, SIZE)]
    with registry.lease("in", 64, 64) as lease:
        np.testing.assert_array_equal(lease.array(np.int32, (16,)), np.arange(16))
        lease.write(np.full(16, 5, np.int32))
    out = tshm.get_contents_as_numpy(handle, np.int32, [16], offset=64)
    np.testing.assert_array_equal(out, 5)
    registry.unregister("in")
    assert registry.status() == []
    registry.unregister("in")  # unknown names are fine, as in Triton
    registry.unregister("")


def test_registered_offset_is_honoured(
    region: tuple[str, object], registry: SystemShmRegistry
) -> None:
    key, handle = region
    tshm.set_shared_memory_region(handle, [np.arange(4, dtype=np.int64)], offset=4096 + 8)
    registry.register("tail", key, 4096, 4096)
    with registry.lease("tail", 8, 32) as lease:
        np.testing.assert_array_equal(lease.array(np.int64, (4,)), np.arange(4))
    with pytest.raises(InvalidArgument, match="Invalid offset \\+ byte size for shared memory"):
        registry.lease("tail", 0, 4097)
    with pytest.raises(InvalidArgument, match="Invalid offset for shared memory region: 'tail'"):
        registry.lease("tail", 4096, 0)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("/a/b", "path separator"),
        ("/..x", r"'\.\.'"),
        ("../etc", "path separator"),
        ("/sem.x", "reserved prefix"),
        ("/.hidden", "reserved prefix"),
        ("/" + "k" * 256, "longer than 255"),
    ],
)
def test_keys_that_could_be_paths_are_never_opened(key: str, problem: str) -> None:
    with pytest.raises(Internal, match=problem) as refused:
        check_key("r", key)
    assert refused.value.message.startswith("Unable to open shared memory region: '")


@pytest.mark.parametrize("key", ["/", "//", ""])
def test_a_key_of_slashes_only_is_tritons_invalid_key(key: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_key("r", key)
    assert (
        refused.value.message
        == f"cannot register shared memory region 'r' - invalid shm key '{key}'"
    )


def test_tritons_reserved_prefix_is_refused_even_when_absent() -> None:
    key = "//triton_python_backend_shm_region_x"
    with pytest.raises(InvalidArgument) as refused:
        check_key("r", key)
    assert refused.value.message == (
        f"cannot register shared memory region 'r' with key '{key}' as the key contains the "
        "reserved prefix 'triton_python_backend_shm_region_'"
    )


def test_bad_registrations_in_tritons_order(
    region: tuple[str, object], registry: SystemShmRegistry
) -> None:
    key, _ = region
    # The open comes before any size check: byte_size 0 of a missing key is a failed open.
    for size in (64, 0):
        with pytest.raises(Internal) as missing:
            registry.register("x", "/asyncinfer_no_such_key", 0, size)
        assert (
            missing.value.message
            == "Unable to open shared memory region: '/asyncinfer_no_such_key'"
        )
    for offset, size in ((0, SIZE + 1), (0, 0), (-1, 8), (SIZE, 1)):
        with pytest.raises(InvalidArgument) as bad:
            registry.register("x", key, offset, size)
        assert bad.value.message == "failed to register shared memory region 'x': invalid args"
    registry.register("x", key, 0, 64)
    with pytest.raises(AlreadyExists) as twice:
        registry.register("x", key, 0, 64)
    assert twice.value.message == "shared memory region 'x' already in manager"
    # invalid args before "already in manager", as in Triton
    with pytest.raises(InvalidArgument, match="invalid args"):
        registry.register("x", key, 0, 0)
    with pytest.raises(InvalidArgument, match="Unable to find shared memory region: 'y'"):
        registry.lease("y", 0, 4)
    with pytest.raises(NotFound, match="'y'"):
        registry.status("y")
    with pytest.raises(InvalidArgument, match="Invalid offset for shared memory region: 'x'"):
        registry.lease("x", -4, 4)
    with registry.lease("x", 0, 8) as lease:
        with pytest.raises(InvalidArgument, match=r"byte_size 8 does not match float32\[4\]"):
            lease.array(np.float32, (4,))
        with pytest.raises(InvalidArgument, match="the output needs 16 bytes"):
            lease.write(np.zeros(4, np.float32))


def test_a_region_in_use_is_not_closed(
    region: tuple[str, object], registry: SystemShmRegistry
) -> None:
    key, handle = region
    registry.register("r", key, 0, SIZE)
    lease = registry.lease("r", 0, 16)
    registry.unregister("")
    assert registry.statistics()["retiring"] == 1
    registry.register("r", key, 0, 64)  # the name is free again at once
    lease.write(b"still open......")
    assert bytes(tshm.get_contents_as_numpy(handle, np.uint8, [16])) == b"still open......"
    copy = lease.array(np.uint8, (16,))  # a copy: it holds nothing of the region
    lease.release()
    assert registry.statistics()["retiring"] == 0
    assert bytes(copy) == b"still open......"
    registry.unregister("r")


def test_inputs_are_copies_read_through_the_descriptor(
    region: tuple[str, object], registry: SystemShmRegistry
) -> None:
    key, handle = region
    tshm.set_shared_memory_region(handle, [np.arange(8, dtype=np.int32)])
    registry.register("r", key, 0, SIZE)
    with registry.lease("r", 0, 32) as lease:
        array = lease.array(np.int32, (8,))
    tshm.set_shared_memory_region(handle, [np.zeros(8, dtype=np.int32)])
    assert array.tolist() == list(range(8))  # read once, owned by the server
    assert registry.statistics() == {"regions": 1, "retiring": 0, "leases": 0}


def test_the_client_region_survives(region: tuple[str, object]) -> None:
    key, _ = region
    registry = SystemShmRegistry()
    registry.register("r", key, 0, SIZE)
    registry.close()
    assert os.path.exists(f"/dev/shm{key}")  # never unlinked by the server


def _mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def test_register_unregister_does_not_leak(region: tuple[str, object]) -> None:
    key, _ = region
    registry = SystemShmRegistry()
    maps_before, fds_before = _mappings(), len(os.listdir("/proc/self/fd"))
    for i in range(3000):
        registry.register(f"r{i % 3}", key, 4096 * (i % 2), 4096)
        with registry.lease(f"r{i % 3}", 0, 64) as lease:
            lease.write(b"x" * 64)
        if i % 3 == 2:
            registry.unregister("" if i % 2 else "r0")
            registry.unregister("")
        with pytest.raises(InvalidArgument):
            registry.register("bad", key, 0, SIZE * 2)  # refused: nothing mapped, nothing open
    registry.close()
    assert (_mappings(), len(os.listdir("/proc/self/fd"))) == (maps_before, fds_before)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(-8, SIZE + 8), size=st.integers(-8, SIZE + 8))
def test_lease_bounds_property(offset: int, size: int) -> None:
    key = f"/asyncinfer_prop_{os.getpid()}"
    handle = tshm.create_shared_memory_region("p", key, SIZE)
    registry = SystemShmRegistry()
    try:
        registry.register("p", key, 0, SIZE)
        inside = 0 <= offset < SIZE and size >= 0 and offset + size <= SIZE
        try:
            registry.lease("p", offset, size).release()
        except InvalidArgument as exc:
            assert not inside and "for shared memory region: 'p'" in exc.message
        else:
            assert inside
    finally:
        registry.close()
        tshm.destroy_shared_memory_region(handle)
