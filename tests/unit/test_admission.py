from __future__ import annotations

import asyncio

import pytest

from asyncinfer.admission import Admission
from asyncinfer.errors import ResourceExhausted


async def test_fast_path_takes_free_slots_without_waiting() -> None:
    admission = Admission("rpc", 2)
    assert admission.try_acquire() and admission.try_acquire()
    assert not admission.try_acquire()
    admission.release()
    assert admission.statistics().in_flight == 1


async def test_waiters_are_served_first_come_first_served() -> None:
    admission = Admission("rpc", 1)
    await admission.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await admission.acquire()
        order.append(i)
        admission.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert admission.statistics().waiting == 5
    assert not admission.try_acquire(), "a newcomer must not jump the queue"
    admission.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert admission.statistics().idle


async def test_wait_is_bounded_by_queue_timeout() -> None:
    admission = Admission("/svc/M", 1, queue_timeout=0.01)
    await admission.acquire()
    with pytest.raises(ResourceExhausted, match=r"/svc/M: 1 calls in flight"):
        await admission.acquire()
    assert admission.statistics().rejected == 1
    assert admission.statistics().waiting == 0


async def test_wait_is_bounded_by_the_callers_deadline() -> None:
    admission = Admission("rpc", 1, queue_timeout=None)
    await admission.acquire()
    with pytest.raises(ResourceExhausted):
        await admission.acquire(time_remaining=0.01)


async def test_cancelled_waiters_leave_no_trace() -> None:
    admission = Admission("rpc", 1)
    await admission.acquire()
    tasks = [asyncio.create_task(admission.acquire()) for _ in range(1000)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    admission.release()
    assert admission.statistics().idle


async def test_slot_handed_to_a_waiter_cancelled_in_the_same_tick_is_passed_on() -> None:
    admission = Admission("rpc", 1)
    await admission.acquire()
    first = asyncio.create_task(admission.acquire())
    second = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    admission.release()  # hands the slot to `first` ...
    first.cancel()  # ... which is cancelled before it runs: the slot must reach `second`
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)
    admission.release()
    assert admission.statistics().idle
