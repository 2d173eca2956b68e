"""The SysV ring (client) and attach cache (server): allocation, bounds, ownership, leases."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import sysv_ipc
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer.errors import InvalidArgument, ResourceExhausted, UsageError
from asyncinfer.shm import ShmDescriptor, SysvAttachments, SysvRing
from asyncinfer.shm.sysv import ALIGNMENT, HEADER_BYTES


@pytest.fixture
def ring() -> Iterator[SysvRing]:
    with SysvRing(4096, segments=2) as ring:
        yield ring


@pytest.fixture
def cache() -> Iterator[SysvAttachments]:
    cache = SysvAttachments(max_segments=4)
    yield cache
    cache.close()
    assert cache.statistics()["retiring"] == 0


def test_slots_are_aligned_and_cycle_through_segments(ring: SysvRing) -> None:
    first = ring.allocate_nowait(100)
    second = ring.allocate_nowait(100)
    assert first.descriptor.segment_id == second.descriptor.segment_id
    assert first.descriptor.offset == HEADER_BYTES  # the header (the token) comes first
    assert second.descriptor.offset == HEADER_BYTES + ALIGNMENT * 2
    third = ring.allocate_nowait(4000)  # does not fit behind the first two: next segment
    assert third.descriptor.segment_id != first.descriptor.segment_id
    with pytest.raises(ResourceExhausted, match="all 2 SysV segments"):
        ring.allocate_nowait(4000)
    first.release()
    second.release()
    again = ring.allocate_nowait(4000)  # the first segment was fully released: reset and reused
    assert again.descriptor == dataclasses.replace(first.descriptor, size=4000)
    assert ring.statistics()["live_slots"] == 2


def test_allocate_waits_for_a_release(ring: SysvRing) -> None:
    async def scenario() -> None:
        held = [ring.allocate_nowait(4096), ring.allocate_nowait(4096)]
        waiter = asyncio.ensure_future(asyncio.wait_for(ring.allocate(4096), 5))
        await asyncio.sleep(0)
        assert not waiter.done()
        held[0].release()
        slot = await waiter
        assert slot.descriptor.segment_id == held[0].descriptor.segment_id
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ring.allocate(4096), 0.01)

    asyncio.run(scenario())


def test_misuse_is_reported(ring: SysvRing) -> None:
    with pytest.raises(UsageError, match=r"slot size must be 1\.\.4096"):
        ring.allocate_nowait(4097)
    slot = ring.allocate_nowait(16)
    slot.release()
    with pytest.raises(UsageError, match="released"):
        slot.view()
    with pytest.raises(UsageError, match="open"):
        SysvRing(64).allocate_nowait(1)
    kept = ring.allocate_nowait(16)
    ring.close()
    with pytest.raises(UsageError, match="the ring was closed"):
        kept.view()
    kept.release()


def test_server_sees_client_bytes_and_writes_back_in_place(
    ring: SysvRing, cache: SysvAttachments
) -> None:
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    with ring.allocate_nowait(data.nbytes) as slot:
        descriptor = slot.write(data)
        with cache.lease(descriptor) as lease:
            view = lease.array(np.float32, (3, 4))
            np.testing.assert_array_equal(view, data)
            view *= 2  # in place, visible to the client without a copy
            del view
        np.testing.assert_array_equal(slot.array(np.float32, (3, 4)), data * 2)
        with cache.lease(descriptor) as lease:  # attached once, reused
            lease.write(np.ones((3, 4), np.float32))
        np.testing.assert_array_equal(slot.array(np.float32, (3, 4)), 1)
    assert cache.statistics()["attaches"] == 1


def test_out_of_bounds_and_mismatches_name_segment_and_bound(
    ring: SysvRing, cache: SysvAttachments
) -> None:
    slot = ring.allocate_nowait(64)
    d = slot.descriptor
    label = f"SysV segment id={d.segment_id}"
    end = HEADER_BYTES + 4096  # the segment: its header, then 4096 bytes of slots
    with pytest.raises(
        InvalidArgument, match=rf"{label}: bytes \[{end - 6}, {end + 10}\) are out of bounds"
    ):
        cache.lease(dataclasses.replace(d, offset=end - 6, size=16))
    with pytest.raises(InvalidArgument, match="offset -1 is negative"):
        cache.lease(dataclasses.replace(d, offset=-1))
    lease = cache.lease(dataclasses.replace(d, offset=2, size=16))
    with lease, pytest.raises(InvalidArgument, match="offset 2 is not aligned for float32"):
        lease.array(np.float32, (4,))
    with cache.lease(dataclasses.replace(d, size=16)) as lease:
        with pytest.raises(InvalidArgument, match=r"byte size 16 does not match float32\[8\]"):
            lease.array(np.float32, (8,))
        with pytest.raises(InvalidArgument, match="the result has 4 bytes"):
            lease.write(np.zeros(1, np.float32))
    assert cache.statistics()["leases"] == 0


def test_ids_the_client_does_not_own_or_removed(ring: SysvRing, cache: SysvAttachments) -> None:
    d = ring.allocate_nowait(64).descriptor
    with pytest.raises(InvalidArgument, match="no segment has key"):
        cache.lease(dataclasses.replace(d, key=d.key ^ 0x5A5A5A))
    for key in (0, 2**31, -(2**31) - 1):
        with pytest.raises(InvalidArgument, match=f"key {key} is not a segment key"):
            cache.lease(dataclasses.replace(d, key=key))
    other = ring.segment_ids[1]
    with pytest.raises(InvalidArgument, match=f"names segment id {d.segment_id}, not {other}"):
        cache.lease(dataclasses.replace(d, segment_id=other))
    with cache.lease(d):
        pass
    with pytest.raises(InvalidArgument, match="is not the segment's key"):
        cache.lease(dataclasses.replace(d, key=d.key + 1))
    stranger = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, mode=0o600, size=4096)
    try:
        # Id and key are public (/proc/sysvipc/shm); without the header's token: refused.
        descriptor = ShmDescriptor(stranger.id, stranger.key, 64, 64)
        with pytest.raises(InvalidArgument, match="token does not match the segment's header"):
            cache.lease(descriptor)
        with pytest.raises(InvalidArgument, match="token does not match"):
            cache.lease(dataclasses.replace(descriptor, token=b"\0" * 16))  # a zero header
        stranger.write(b"T" * 16)  # what a ring writes: its token
        descriptor = dataclasses.replace(descriptor, token=b"T" * 16)
        with cache.lease(descriptor):
            pass
        stranger.remove()  # the client removes it while the server still has it attached
        with pytest.raises(InvalidArgument, match="no segment has key"):
            cache.lease(descriptor)
    finally:
        stranger.detach()


def test_detach_waits_for_leases_and_escaped_views(ring: SysvRing, cache: SysvAttachments) -> None:
    slot = ring.allocate_nowait(64)
    lease = cache.lease(slot.descriptor)
    escaped = lease.array(np.uint8, (64,))
    cache.release(slot.descriptor.segment_id)
    assert cache.statistics()["retiring"] == 1  # leased: not detached under the request
    lease.release()
    assert cache.statistics()["retiring"] == 1  # a view escaped the lease: still mapped
    escaped[:] = 7  # still valid memory
    del escaped
    cache.close()
    assert cache.statistics() == {
        "attached": 0, "retiring": 0, "leases": 0, "attaches": 1, "detaches": 1,
    }  # fmt: skip


def test_a_released_segment_detaches_at_the_next_lease_once_its_view_is_gone(
    ring: SysvRing, cache: SysvAttachments
) -> None:
    first, second = ring.allocate_nowait(4000), ring.allocate_nowait(4000)
    assert first.descriptor.segment_id != second.descriptor.segment_id
    lease = cache.lease(first.descriptor)
    escaped = lease.array(np.uint8, (4000,))
    cache.release(first.descriptor.segment_id)
    lease.release()
    assert cache.statistics()["retiring"] == 1
    del escaped
    with cache.lease(second.descriptor):  # any later lease sweeps it, not only close()
        pass
    assert cache.statistics()["retiring"] == 0 and cache.statistics()["detaches"] == 1


def test_a_full_cache_of_leased_segments_still_attaches_the_next() -> None:
    cache = SysvAttachments(max_segments=1)
    with SysvRing(4096, segments=2) as ring:
        first, second = ring.allocate_nowait(4096), ring.allocate_nowait(4096)
        held = cache.lease(first.descriptor)
        with cache.lease(second.descriptor) as lease:
            lease.write(np.full(4096, 9, np.uint8))
        assert second.array(np.uint8, (4096,))[0] == 9
        held.release()
        assert cache.statistics()["attached"] == 2  # over the bound only while both were in use
        cache.lease(second.descriptor).release()  # the next lease evicts down to the bound
        assert cache.statistics()["attached"] == 1
    cache.close()


def test_cache_is_bounded() -> None:
    cache = SysvAttachments(max_segments=2)
    with SysvRing(4096, segments=4) as ring:
        slots = [ring.allocate_nowait(4096) for _ in range(4)]
        for slot in slots:
            cache.lease(slot.descriptor).release()
        assert cache.statistics()["attached"] == 2
        assert cache.statistics()["detaches"] == 2
    cache.close()


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(-10, 5000), size=st.integers(-10, 5000))
def test_bounds_property(offset: int, size: int) -> None:
    with SysvRing(4096, segments=1) as ring:
        d = ring.allocate_nowait(1).descriptor
        cache = SysvAttachments()
        try:
            inside = offset >= 0 and size >= 0 and offset + size <= HEADER_BYTES + 4096
            try:
                cache.lease(dataclasses.replace(d, offset=offset, size=size)).release()
            except InvalidArgument:
                assert not inside
            else:
                assert inside
        finally:
            cache.close()


def test_a_key_read_from_proc_is_not_enough(ring: SysvRing, cache: SysvAttachments) -> None:
    """Regression: any local user reads every key and id in /proc/sysvipc/shm; on main a
    descriptor built from them was served. Now the segment's header token is required."""
    slot = ring.allocate_nowait(64)
    d = slot.descriptor
    listed = {}
    with open("/proc/sysvipc/shm") as table:
        next(table)
        for line in table:
            key, shmid = (int(field) for field in line.split()[:2])
            listed[shmid] = key
    assert listed[d.segment_id] == d.key  # public knowledge
    forged = ShmDescriptor(d.segment_id, listed[d.segment_id], d.offset, d.size)
    with pytest.raises(InvalidArgument, match="token does not match the segment's header"):
        cache.lease(forged)
    wrong = dataclasses.replace(d, token=bytes(16))
    with pytest.raises(InvalidArgument, match="token does not match"):
        cache.lease(wrong)
    with cache.lease(d):  # the ring's own descriptor carries the token
        pass
    assert d.offset >= HEADER_BYTES  # slots never overlap the header
    slot.release()


def test_a_segment_open_to_other_users_is_refused(cache: SysvAttachments) -> None:
    shared = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, mode=0o644, size=4096)
    try:
        shared.write(b"T" * 16)
        descriptor = ShmDescriptor(shared.id, shared.key, 64, 64, b"T" * 16)
        with pytest.raises(InvalidArgument, match="open to other users"):
            cache.lease(descriptor)
    finally:
        shared.remove()
        shared.detach()
