"""Model load/unload cycles leave the server's descriptors, threads, children and /dev/shm
entries as they were (30 cycles in CI; bench/soak.py runs 1,000), and SIGKILL of one of two
workers under load fails only the calls in flight on it."""

from __future__ import annotations

import pathlib

import pytest

from .._bench import reliability


@pytest.mark.timeout(180)
def test_load_unload_cycles_leave_nothing_behind(
    repository: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    server = reliability.serve(repository, tmp_path, explicit=True, ready_models=())
    try:
        figures = reliability.load_unload(server, cycles=30, process_every=10)
    finally:
        server.stop()
    before, after = figures["before"], figures["after"]
    assert after["fds"] == before["fds"], figures
    assert after["children"] == before["children"] == 0, figures
    assert after["dev_shm"] == before["dev_shm"] == 0, figures
    assert after["threads"] <= before["threads"], figures
    assert figures["rss_growth_mb"] < 50, figures


@pytest.mark.timeout(180)
def test_killing_one_of_two_workers_fails_only_its_calls_in_flight(
    repository: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    server = reliability.serve(repository, tmp_path, workers=2)
    try:
        figures = reliability.worker_kill(server, concurrency=8, seconds=4.0)
    finally:
        server.stop()
    assert figures["workers"] == 2, figures
    assert figures["ok"] > 0, figures
    # Calls that started after the kill (once the client saw the connection close, 0.25 s)
    # wait for a connection and succeed; only those in flight on the killed worker (at most
    # one per connection) fail.
    assert figures["failed_started_after_kill_grace"] == 0, figures
    assert figures["failed"] <= figures["concurrency"], figures
