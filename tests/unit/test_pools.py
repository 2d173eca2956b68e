"""Object pools: leases, FIFO fairness, timeouts, reset hook, leaks, closing, cancellation; the
Handover they (and admission, and python-model instances) wait in."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncinfer.errors import ResourceExhausted, Unavailable, UsageError
from asyncinfer.pools import Handover, Pool


async def test_lease_gives_item_and_returns_it() -> None:
    pool = Pool(["a", "b"], name="letters")
    async with pool.acquire() as lease:
        assert lease.item in ("a", "b")
        assert pool.statistics().leased == 1
    stats = pool.statistics()
    assert (stats.size, stats.idle, stats.leased, stats.acquired) == (2, 2, 0, 1)


async def test_lease_used_after_release_is_a_usage_error() -> None:
    pool = Pool([1], name="one")
    lease = await pool.acquire()
    lease.release()
    with pytest.raises(UsageError, match="pool 'one' was used after its release"):
        _ = lease.item
    with pytest.raises(UsageError, match="released twice"):
        lease.release()


async def test_early_release_inside_async_with_is_fine() -> None:
    pool = Pool([1], name="early")
    async with pool.acquire() as lease:
        lease.release()
        assert pool.statistics().idle == 1
    assert pool.statistics().idle == 1


async def test_waiters_are_served_first_come_first_served() -> None:
    pool = Pool(["x"], name="fifo")
    first = await pool.acquire()
    order: list[int] = []

    async def borrower(i: int) -> None:
        async with pool.acquire():
            order.append(i)
            await asyncio.sleep(0)

    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(borrower(i)))
        await asyncio.sleep(0)  # each waiter queues before the next starts
    assert pool.statistics().waiting == 20
    first.release()
    await asyncio.gather(*tasks)
    assert order == list(range(20))


async def test_returned_item_goes_to_the_waiter_not_a_newcomer() -> None:
    pool = Pool(["x"], name="nobarging")
    held = await pool.acquire()
    waiter = asyncio.create_task(pool._lease(None))
    await asyncio.sleep(0)
    held.release()
    with pytest.raises(ResourceExhausted, match="nobarging"):
        pool.acquire_nowait()
    (await waiter).release()
    pool.acquire_nowait().release()


async def test_timeout_names_the_pool_and_counts() -> None:
    pool = Pool([object()], name="engines")
    async with pool.acquire():
        with pytest.raises(ResourceExhausted, match=r"pool 'engines': no item free within 0\.01 s"):
            async with pool.acquire(timeout=0.01):
                pass
    stats = pool.statistics()
    assert (stats.timeouts, stats.waiting, stats.idle) == (1, 0, 1)


async def test_default_timeout_from_the_constructor() -> None:
    pool = Pool([1], name="deflt", timeout=0.01)
    held = await pool.acquire()
    with pytest.raises(ResourceExhausted):
        await pool.acquire()
    held.release()


async def test_reset_hook_runs_on_every_return() -> None:
    resets: list[list[int]] = []

    def reset(item: list[int]) -> None:
        resets.append(list(item))
        item.clear()

    pool: Pool[list[int]] = Pool([[]], name="lists", reset=reset)
    async with pool.acquire() as lease:
        lease.item.append(1)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as lease:
            lease.item.append(2)
            raise RuntimeError("boom")
    async with pool.acquire() as lease:
        assert lease.item == []
    assert resets == [[1], [2], []]


async def test_failing_reset_retires_the_item_and_factory_replaces_it() -> None:
    def reset(item: dict[str, bool]) -> None:
        if item.get("broken"):
            raise ValueError("cannot reset")

    made: list[int] = []

    def factory() -> dict[str, bool]:
        made.append(1)
        return {}

    pool: Pool[dict[str, bool]] = Pool([{}], name="fragile", reset=reset, factory=factory)
    with pytest.raises(ValueError, match="cannot reset"):
        async with pool.acquire() as lease:
            lease.item["broken"] = True
            lease.release()
    stats = pool.statistics()
    assert (stats.retired, stats.size, stats.idle, len(made)) == (1, 1, 1, 1)
    async with pool.acquire() as lease:
        assert lease.item == {}


async def test_failing_reset_does_not_hide_the_blocks_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def reset(item: object) -> None:
        raise ValueError("cannot reset")

    pool = Pool([1, 2], name="hidden", reset=reset)
    with caplog.at_level(logging.WARNING, "asyncinfer.pools"), pytest.raises(KeyError):
        async with pool.acquire():
            raise KeyError("the real error")
    assert "reset on return failed" in caplog.text
    assert pool.statistics().retired == 1


async def test_leaked_lease_is_reported_counted_and_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = Pool(["x"], name="leaky")
    with caplog.at_level(logging.WARNING, "asyncinfer.pools"):
        lease = await pool.acquire()
        del lease
        gc.collect()
        await asyncio.sleep(0)
    assert pool.leaks() == 1 and pool.statistics().leaks == 1
    assert "pool 'leaky': a lease was garbage-collected without release" in caplog.text
    assert pool.statistics().idle == 1
    async with pool.acquire(timeout=1) as again:
        assert again.item == "x"


async def test_closed_pool_refuses_and_fails_waiters() -> None:
    pool = Pool([1], name="closing")
    held = await pool.acquire()
    waiter = asyncio.create_task(pool._lease(None))
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(Unavailable, match="pool 'closing' closed while waiting"):
        await waiter
    with pytest.raises(Unavailable, match="pool 'closing' is closed"):
        await pool.acquire()
    held.release()  # leases out may still return
    assert pool.statistics().idle == 1 and pool.idle_items() == [1]


async def test_thousands_of_cancelled_acquirers_leave_the_pool_idle() -> None:
    pool = Pool(["a", "b"], name="cancel")
    held = [await pool.acquire(), await pool.acquire()]

    async def acquirer() -> None:
        async with pool.acquire():
            await asyncio.sleep(3600)

    tasks = [asyncio.create_task(acquirer()) for _ in range(3000)]
    await asyncio.sleep(0)
    assert pool.statistics().waiting == 3000
    for task in tasks:
        task.cancel()
    for lease in held:
        lease.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    stats = pool.statistics()
    assert (stats.idle, stats.leased, stats.waiting) == (2, 0, 0)


async def test_cancel_after_hand_over_does_not_lose_the_item() -> None:
    pool = Pool(["x"], name="race")
    held = await pool.acquire()
    waiter = asyncio.create_task(pool._lease(None))
    second = asyncio.create_task(pool._lease(None))
    await asyncio.sleep(0)
    held.release()  # hands "x" to `waiter`, which has not run yet
    waiter.cancel()  # ... and is cancelled before it could
    with pytest.raises(asyncio.CancelledError):
        await waiter
    (await second).release()  # the item went on to the next waiter
    assert pool.statistics().idle == 1


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 4),
    plan=st.lists(st.booleans(), min_size=1, max_size=40),  # True: this waiter gets cancelled
)
def test_fifo_and_no_loss_under_random_cancellation(size: int, plan: list[bool]) -> None:
    async def scenario() -> None:
        pool = Pool(list(range(size)), name="prop")
        held = [await pool.acquire() for _ in range(size)]
        order: list[int] = []

        async def borrower(i: int) -> None:
            async with pool.acquire():
                order.append(i)
                await asyncio.sleep(0)

        tasks = []
        for i in range(len(plan)):
            tasks.append(asyncio.create_task(borrower(i)))
            await asyncio.sleep(0)
        for task, cancel in zip(tasks, plan, strict=True):
            if cancel:
                task.cancel()
        for lease in held:
            lease.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        survivors = [i for i, cancel in enumerate(plan) if not cancel]
        assert sorted(order) == survivors
        # FIFO: each group of `size` consecutive grants starts in arrival order
        assert order[: min(size, len(order))] == survivors[: min(size, len(order))]
        stats = pool.statistics()
        assert (stats.idle, stats.waiting, stats.leased) == (size, 0, 0)

    asyncio.run(scenario())


async def test_drain_serves_the_waiting_refuses_newcomers_and_waits_for_returns() -> None:
    pool = Pool([1], name="drained")
    held = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    draining = asyncio.create_task(pool.drain())
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="'drained' is closed"):
        pool.acquire_nowait()
    with pytest.raises(Unavailable):
        await pool.acquire()
    held.release()
    second = await asyncio.wait_for(waiting, 10)  # admitted before the drain: still served
    assert not draining.done()
    second.release()
    await asyncio.wait_for(draining, 10)
    assert pool.statistics().closed and pool.statistics().idle == 1


async def test_a_leaked_nowait_lease_comes_back_on_the_loop_thread() -> None:
    returned_on: list[int] = []
    pool = Pool([1], name="nowait", reset=lambda item: returned_on.append(threading.get_ident()))
    leases = [pool.acquire_nowait()]
    # The only reference dies on another thread, so __del__ runs there; the item must still
    # come back through the loop, never on that thread.
    await asyncio.to_thread(leases.clear)
    for _ in range(1000):
        if returned_on:
            break
        await asyncio.sleep(0.01)
    assert returned_on == [threading.get_ident()]
    assert pool.leaks() == 1 and pool.statistics().idle == 1


async def test_handover_serves_waiters_first_come_first_served() -> None:
    kept: list[int] = []
    handover = Handover(kept.append)
    assert not handover.hand(0), "nobody waits: the owner keeps it"
    tasks = []
    for _ in range(3):
        tasks.append(asyncio.create_task(handover.wait()))
        await asyncio.sleep(0)  # each waiter queues before the next starts
    assert [handover.hand(value) for value in (1, 2, 3)] == [True, True, True]
    assert await asyncio.gather(*tasks) == [1, 2, 3]
    assert not handover.waiters and kept == []


async def test_handover_to_a_waiter_cancelled_in_the_same_step_passes_the_value_on() -> None:
    kept: list[str] = []
    handover = Handover(kept.append)
    first = asyncio.create_task(handover.wait())
    second = asyncio.create_task(handover.wait())
    third = asyncio.create_task(handover.wait())
    await asyncio.sleep(0)
    assert handover.hand("x")  # to `first`, which has not run yet ...
    first.cancel()  # ... and is cancelled before it could: "x" goes on to `second`
    assert await asyncio.wait_for(second, 1) == "x"
    assert first.cancelled() and kept == []
    assert handover.hand("y")  # to `third`, cancelled alike with nobody behind it ...
    third.cancel()
    await asyncio.gather(third, return_exceptions=True)
    assert kept == ["y"], "... so the owner keeps it"
    assert not handover.waiters


async def test_handover_wait_times_out_and_leaves_the_line() -> None:
    handover: Handover[int] = Handover(lambda value: None)
    with pytest.raises(TimeoutError):
        await handover.wait(0.01)
    assert not handover.waiters and handover.waiting() == 0
    late = asyncio.create_task(handover.wait(1))
    await asyncio.sleep(0)
    assert handover.hand(7)  # a bounded wait that is served returns the value
    assert await late == 7


async def test_handover_to_a_waiter_timing_out_in_the_same_step_passes_the_value_on() -> None:
    kept: list[str] = []
    handover = Handover(kept.append)
    waiter = asyncio.create_task(handover.wait(0))  # its timeout fires in the next step
    await asyncio.sleep(0)  # the waiter queues and arms its timeout
    assert handover.hand("x"), "handed over before the timeout ran"
    with pytest.raises(TimeoutError):
        await waiter
    assert kept == ["x"]


async def test_handover_fail_fails_every_live_waiter_with_its_own_error() -> None:
    handover: Handover[int] = Handover(lambda value: None)
    tasks = [asyncio.create_task(handover.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()  # done, still in line: not failed again
    handover.fail(lambda: Unavailable("closed while waiting"))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], Unavailable) and isinstance(results[2], Unavailable)
    assert results[0] is not results[2]
    assert isinstance(results[1], asyncio.CancelledError)
    assert not handover.waiters and not handover.hand(1)


async def test_handover_counts_only_live_waiters() -> None:
    handover: Handover[int] = Handover(lambda value: None)
    tasks = [asyncio.create_task(handover.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert handover.waiting() == 3
    tasks[0].cancel()  # done at once; it leaves the line when it next runs
    assert (handover.waiting(), len(handover.waiters)) == (2, 3)
    await asyncio.gather(tasks[0], return_exceptions=True)
    assert (handover.waiting(), len(handover.waiters)) == (2, 2)
    assert handover.hand(1) and handover.hand(2)
    assert await asyncio.gather(*tasks[1:]) == [1, 2]
    assert handover.waiting() == 0
