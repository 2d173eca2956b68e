"""Structured logging: one setup for servers, supervisors and workers, one record per line.

``configure(verbose=0, format="json")`` sends every ``asyncinfer`` (and any other) logger's
records to stderr as one JSON object per line (or ``key=value`` text), with the time, level,
logger, pid, message and whatever the call site passed in ``extra``, such as the ``error_id``
of :func:`asyncinfer.errors.internal_error`. A traceback goes into ``exc`` as one string, so a
record stays one line that log shippers can parse.

Worker processes are started with "spawn" and inherit nothing: the supervisor hands them
``settings()`` and each worker calls ``configure(**settings)`` before it builds its server.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any, Literal, TextIO

from .errors import ConfigError

__all__ = ["JsonFormatter", "KeyValueFormatter", "configure", "reconfigure", "settings"]

LogFormat = Literal["json", "text"]

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_settings: dict[str, Any] | None = None
_stream: TextIO | None = None


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": record.levelname.lower(),
        "logger": record.name,
        "pid": record.process or os.getpid(),
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["exc"] = formatter.formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), default=str)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=... msg="..."`` per record (values JSON-quoted when needed)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_text(value)}" for key, value in _fields(record, self).items())


def _text(value: Any) -> str:
    text = str(value)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text)


class _LevelFilter(logging.Filter):
    """Drops INFO, WARNING or ERROR (and CRITICAL) records when their switch is off."""

    def __init__(self, info: bool, warning: bool, error: bool) -> None:
        super().__init__()
        self.switches = (info, warning, error)

    def filter(self, record: logging.LogRecord) -> bool:
        info, warning, error = self.switches
        if record.levelno >= logging.ERROR:
            return error
        if record.levelno >= logging.WARNING:
            return warning
        if record.levelno >= logging.INFO:
            return info
        return True  # DEBUG: --log-verbose decides


def configure(
    *,
    verbose: int = 0,
    format: LogFormat = "json",
    stream: TextIO | None = None,
    file: str | None = None,
    info: bool = True,
    warning: bool = True,
    error: bool = True,
) -> None:
    """Route every record at INFO (``verbose`` 0) or DEBUG (``verbose`` >= 1) to ``stream``
    (stderr by default), or appended to ``file`` (tritonserver's ``--log-file``); ``info``,
    ``warning`` and ``error`` False drop the records of that level (Triton's ``--log-info``
    etc.).

    Replaces the root logger's handlers, so calling it again changes the setup instead of
    doubling every line.
    """
    global _settings, _stream
    if format not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', not {format!r}")
    _stream = stream
    handler: logging.Handler
    if file:
        try:
            handler = logging.FileHandler(file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open --log-file {file}: {exc.strerror}") from exc
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else KeyValueFormatter())
    handler.addFilter(_LevelFilter(info, warning, error))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):  # ours, from an earlier --log-file
            old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    if verbose < 2:
        # gRPC's and asyncio's debug chatter only at --log-verbose 2 and up.
        for noisy in ("asyncio", "grpc"):
            logging.getLogger(noisy).setLevel(logging.INFO)
    _settings = {
        "verbose": verbose,
        "format": format,
        "file": file or "",
        "info": info,
        "warning": warning,
        "error": error,
    }


def settings() -> dict[str, Any] | None:
    """The arguments of the last ``configure`` in this process but the stream (None: never
    configured)."""
    return None if _settings is None else dict(_settings)


def reconfigure(**changes: Any) -> dict[str, Any]:
    """Change some of the settings at run time (same stream); returns the settings after."""
    wanted = {**(_settings or {}), **changes}
    configure(stream=_stream, **wanted)
    return dict(wanted)
