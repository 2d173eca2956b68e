"""Structured logs: one JSON (or key=value) line per record, error ids included."""

from __future__ import annotations

import io
import json
import logging
import pathlib
from collections.abc import Iterator

import pytest

from asyncinfer import logs
from asyncinfer.errors import ConfigError, internal_error


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_an_internal_error_is_one_json_line_with_its_id_and_traceback(restore_root: None) -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as exc:
        error = internal_error(exc, "/pkg.Service/Method")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert error.message == f"internal error (id={record['error_id']})"
    assert record["level"] == "error" and record["logger"] == "asyncinfer.errors"
    assert record["where"] == "/pkg.Service/Method"
    assert "RuntimeError: boom" in record["exc"]
    assert record["pid"] > 0 and record["ts"].endswith("+00:00")


def test_verbose_controls_debug_records_and_reconfiguring_does_not_double(
    restore_root: None,
) -> None:
    stream = io.StringIO()
    logs.configure(verbose=0, stream=stream)
    logs.configure(verbose=0, stream=stream)
    log = logging.getLogger("asyncinfer.test")
    log.debug("hidden")
    log.info("shown")
    assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["shown"]
    logs.configure(verbose=1, stream=stream)
    log.debug("now shown")
    assert json.loads(stream.getvalue().splitlines()[-1])["msg"] == "now shown"
    assert logs.settings() == {
        "verbose": 1,
        "format": "json",
        "file": "",
        "info": True,
        "warning": True,
        "error": True,
    }


def test_log_file_and_dropped_levels(restore_root: None, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "server.log"
    logs.configure(file=str(path), info=False, error=False)
    log = logging.getLogger("asyncinfer.test")
    log.info("info")
    log.warning("warning")
    log.error("error")
    log.critical("critical")
    logs.configure(stream=io.StringIO())  # closes the file
    assert [json.loads(line)["msg"] for line in path.read_text().splitlines()] == ["warning"]


def test_an_unopenable_log_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot open --log-file"):
        logs.configure(file=str(tmp_path / "missing" / "server.log"))


def test_text_format_quotes_values_with_spaces(restore_root: None) -> None:
    stream = io.StringIO()
    logs.configure(format="text", stream=stream)
    logging.getLogger("asyncinfer.test").warning("two words", extra={"model": "simple"})
    line = stream.getvalue().strip()
    assert 'msg="two words"' in line and "model=simple" in line and "level=warning" in line


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json"):
        logs.configure(format="xml")  # type: ignore[arg-type]
