"""The trace and log settings state: read as they are, changes refused unless they change
nothing, per-model trace settings falling back to the server's."""

from __future__ import annotations

import pytest

from asyncinfer import logs
from asyncinfer.errors import InvalidArgument, Unimplemented
from asyncinfer.inference.server_settings import TRACE_DEFAULTS, LogSettings, TraceSettings


def test_trace_settings_are_off_for_the_server_and_every_model() -> None:
    settings = TraceSettings()
    assert settings.get() == settings.get("simple") == TRACE_DEFAULTS
    assert settings.update({"trace_level": ["OFF"], "trace_rate": []}, "simple") == TRACE_DEFAULTS
    with pytest.raises(Unimplemented, match="trace setting 'trace_count' cannot be changed"):
        settings.update({"trace_count": ["5"]})
    with pytest.raises(InvalidArgument, match="unknown trace setting 'level'"):
        settings.update({"level": ["OFF"]})


def test_log_settings_follow_the_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_settings", {"verbose": 1, "format": "text"})
    settings = LogSettings()
    current = settings.get()
    assert (current["log_verbose_level"], current["log_format"]) == (1, "text")
    assert settings.update({"log_format": "text", "log_error": True}) == current
    with pytest.raises(Unimplemented, match="log setting 'log_format' cannot be changed to 'x'"):
        settings.update({"log_format": "x"})
    with pytest.raises(InvalidArgument, match="'log_info' takes a bool, not int"):
        settings.update({"log_info": 1})
    with pytest.raises(InvalidArgument, match="unknown log setting 'log_colour'"):
        settings.update({"log_colour": "red"})
