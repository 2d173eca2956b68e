"""The log settings state: read from the logging setup and changed at run time (verbosity,
format, levels); bad changes refused and nothing changed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from asyncinfer import logs
from asyncinfer.errors import FailedPrecondition, InvalidArgument
from asyncinfer.inference.server_settings import LogSettings, LogValue


def test_log_settings_change_the_logging_setup_at_run_time() -> None:
    stream = io.StringIO()
    before = logs.settings()
    logs.configure(verbose=0, format="json", stream=stream)
    try:
        settings = LogSettings()
        assert settings.get()["log_format"] == "json"
        changed = settings.update({"log_format": "text", "log_verbose_level": 1})
        assert (changed["log_format"], changed["log_verbose_level"]) == ("text", 1)
        logging.getLogger("asyncinfer.test").debug("debug line")
        assert 'msg="debug line"' in stream.getvalue()  # text format, debug now shown
        settings.update({"log_warning": False, "log_format": "json"})
        logging.getLogger("asyncinfer.test").warning("hidden")
        logging.getLogger("asyncinfer.test").error("shown")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()[1:]]
        assert [line["msg"] for line in lines] == ["shown"]
    finally:
        logs.configure(**(before or {}))


def test_bad_log_changes_are_refused() -> None:
    settings = LogSettings()
    current = settings.get()
    cases: list[tuple[dict[str, LogValue], str]] = [
        ({"log_format": "ISO8601"}, "'log_format' must be one of \\['json', 'text'\\]"),
        ({"log_info": 1}, "'log_info' takes a bool, not int"),
        ({"log_colour": "red"}, "unknown log setting 'log_colour'"),
        ({"log_file": "/tmp/x.log"}, "'log_file' cannot be changed by a client"),
    ]
    for changes, text in cases:
        with pytest.raises(InvalidArgument, match=text):
            settings.update(changes)
    assert settings.get() == current
    with pytest.raises(FailedPrecondition, match="several worker processes"):
        LogSettings(lambda: True).update(
            {"log_verbose_level": int(current["log_verbose_level"]) + 1}
        )
