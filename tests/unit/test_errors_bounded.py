"""Client strings are echoed bounded and escaped; an UNKNOWN logs its traceback once per cause
within the window (regression: every request logged a 2 KB traceback)."""

from __future__ import annotations

import logging

import pytest

from asyncinfer import errors
from asyncinfer.errors import bounded_message, echo, internal_error


def test_echo_bounds_and_escapes() -> None:
    assert echo("simple") == "simple"
    long = "m" * 10_000
    assert echo(long) == "m" * errors.ECHO_LIMIT + "...(10000 characters)"
    assert echo("a\nb\x00") == "a\\nb\\x00"
    assert len(bounded_message("x" * 100_000)) <= errors.MESSAGE_LIMIT


def _raise(where: int) -> BaseException:
    try:
        if where:
            raise ValueError("one place")
        raise ValueError("another place")
    except ValueError as exc:
        return exc


def test_an_internal_error_is_logged_once_per_cause_and_window(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with caplog.at_level(logging.ERROR, logger="asyncinfer.errors"):
        ids = {internal_error(_raise(1), "/svc/M").message for _ in range(1000)}
        assert len(ids) == 1 and len(caplog.records) == 1  # one traceback for 1000 calls
        internal_error(_raise(0), "/svc/M")  # another line raised: another cause
        internal_error(_raise(1), "/svc/Other")  # another RPC: another cause
        assert len(caplog.records) == 3
        monkeypatch.setattr(errors, "INTERNAL_LOG_WINDOW", 0.0)
        again = internal_error(_raise(1), "/svc/M")  # the window passed: logged again
    assert again.message not in ids
    assert "999 more like it since the last report" in caplog.records[-1].getMessage()
    assert caplog.records[-1].exc_info is not None
