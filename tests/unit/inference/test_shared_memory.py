"""Shared-memory parameters of inference tensors (plain values, from any front end): parsing,
overlap, and a request's leases."""

from __future__ import annotations

import mmap
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.errors import InvalidArgument, Unimplemented
from asyncinfer.inference.shared_memory import (
    DISABLED,
    RequestShm,
    SharedMemory,
    ShmSpan,
    shm_span,
)


def _params(**values: object) -> dict[str, object]:
    """A tensor's parameters as the front ends hand them over: plain values."""
    return values


def test_spans_from_parameters() -> None:
    assert shm_span(_params(), "x") is None
    span = shm_span(_params(shared_memory_region="r", shared_memory_byte_size=64), "x")
    assert span == ShmSpan("r", 0, 64)
    tensor = _params(shared_memory_region="r", shared_memory_byte_size=8, shared_memory_offset=16)
    assert shm_span(tensor, "x") == ShmSpan("r", 16, 8)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shared_memory_region": "r"}, "'shared_memory_byte_size' must be given"),
        ({"shared_memory_byte_size": 4}, "'shared_memory_region' is not"),
        ({"shared_memory_region": "r", "shared_memory_byte_size": "4"}, "must be an integer"),
        (
            {
                "shared_memory_region": "r",
                "shared_memory_byte_size": 4,
                "shared_memory_offset": True,
            },
            "'shared_memory_offset' must be an integer",
        ),
    ],
)
def test_bad_parameters(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        shm_span(_params(**values), "input 'X'")


@given(
    a=st.tuples(st.integers(0, 64), st.integers(0, 64)),
    b=st.tuples(st.integers(0, 64), st.integers(0, 64)),
)
def test_overlap_matches_byte_sets(a: tuple[int, int], b: tuple[int, int]) -> None:
    first, second = ShmSpan("r", *a), ShmSpan("r", *b)
    bytes_a = set(range(a[0], a[0] + a[1]))
    bytes_b = set(range(b[0], b[0] + b[1]))
    assert first.overlaps(second) == bool(bytes_a & bytes_b)
    assert not first.overlaps(ShmSpan("other", *b))


def test_a_request_scope_reads_inputs_and_writes_outputs(shared: SharedMemory) -> None:
    with shared.scope() as scope:
        scope.write_output(ShmSpan("r", 64, 16), np.arange(4, dtype=np.float32).tobytes(), "out")
        view = np.frombuffer(scope.read(scope.lease(ShmSpan("r", 64, 16))), np.float32)
        np.testing.assert_array_equal(view, np.arange(4))
        with pytest.raises(InvalidArgument, match="should be at least 16 bytes"):
            scope.write_output(ShmSpan("r", 0, 8), bytes(16), "out")
        with pytest.raises(InvalidArgument, match="Invalid offset \\+ byte size"):
            scope.lease(ShmSpan("r", 64, mmap.PAGESIZE))
        assert shared.system.statistics()["leases"] == 2
        del view
    assert shared.system.statistics()["leases"] == 0


def test_register_and_unregister_are_refused_while_client_shm_is_off() -> None:
    shared = SharedMemory(allow_client_shm=False)
    calls: tuple[Callable[[], None], ...] = (
        lambda: shared.register_system("r", "/r", 0, 8),
        lambda: shared.unregister_system(""),
        lambda: shared.unregister_system("r"),
        lambda: shared.register_cuda("r", bytes(64), 0, 8),
        lambda: shared.unregister_cuda(""),
    )
    for call in calls:
        with pytest.raises(Unimplemented) as refused:
            call()
        assert refused.value.message == DISABLED
    assert shared.system_status() == [] and shared.cuda_status("r") == []


def test_extensions_follow_the_switch() -> None:
    assert SharedMemory(allow_client_shm=False).extensions() == ()
    assert "system_shared_memory" in SharedMemory(allow_client_shm=True).extensions()


def _model_that_fails(shared: SharedMemory, scope: RequestShm) -> None:
    view = np.frombuffer(scope.read(scope.lease(ShmSpan("r", 0, 16))), np.float32)
    shared.system.unregister("r")  # the client unregisters while the request runs
    raise ValueError(f"the model failed holding a view of {view.nbytes} bytes")


def test_a_region_unregistered_during_a_failing_request_unmaps_after_it(
    shared: SharedMemory,
) -> None:
    # The traceback (kept by pytest.raises) holds the failing frame, whose local `view` is
    # a view of the region: the scope clears those frames before returning its leases.
    with pytest.raises(ValueError, match="holding a view"), shared.scope() as scope:
        _model_that_fails(shared, scope)
    assert shared.system.statistics() == {"regions": 0, "retiring": 0, "leases": 0}
