"""The server's trace and log settings as Triton's clients read and change them at run time: the
one state behind gRPC's TraceSetting and LogSettings (and HTTP's ``/v2/trace/setting`` and
``/v2/logging``).

The trace settings are the server's tracing state (``asyncinfer.tracing.TraceSettings``, with
Triton's semantics: per model or global, rate, level, count). The log settings change this
process's logging (logs.py) at run time: verbosity and format. Keys are Triton's; an unknown key
or a value of the wrong kind is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .. import logs
from ..errors import FailedPrecondition, InvalidArgument
from ..tracing import TraceSettings

__all__ = ["LogSettings", "LogValue", "TraceSettings"]

LogValue = bool | int | str


#: Triton's log setting -> the logs.configure() argument it changes.
_LOG_KEYS = {
    "log_info": "info",
    "log_warning": "warning",
    "log_error": "error",
    "log_verbose_level": "verbose",
    "log_format": "format",
}
_FORMATS = ("json", "text")


class LogSettings:
    """The log settings of this process (logs.py), read and changed at run time.

    ``log_file`` is the ``--log-file`` the server started with ("": stderr); a client cannot
    point the server's logs elsewhere.
    ``log_format`` is this server's: ``json`` or ``text`` (Triton's ``default`` and
    ``ISO8601`` are its own line formats). ``shared``: whether several worker processes
    serve (a change would reach one of them, so changes are refused).
    """

    def __init__(self, shared: Callable[[], bool] = lambda: False) -> None:
        self._shared = shared

    def get(self) -> dict[str, LogValue]:
        configured = logs.settings() or {}
        return {
            "log_file": str(configured.get("file", "")),  # "": stderr
            "log_info": bool(configured.get("info", True)),
            "log_warning": bool(configured.get("warning", True)),
            "log_error": bool(configured.get("error", True)),
            "log_verbose_level": int(configured.get("verbose", 0)),
            "log_format": str(configured.get("format", "json")),
        }

    def update(self, changes: Mapping[str, LogValue]) -> dict[str, LogValue]:
        """Apply ``changes`` (all checked first); the settings in force after."""
        current = self.get()
        wanted: dict[str, LogValue] = {}
        for key, value in changes.items():
            if key not in current:
                raise InvalidArgument(
                    f"unknown log setting '{key}'; the settings are {sorted(current)}"
                )
            if type(value) is not type(current[key]):
                raise InvalidArgument(
                    f"log setting '{key}' takes a {type(current[key]).__name__}, not "
                    f"{type(value).__name__}"
                )
            if value == current[key]:
                continue
            if key == "log_file":
                raise InvalidArgument(
                    "log setting 'log_file' cannot be changed by a client: set it where the "
                    "server starts (--log-file)"
                )
            if key == "log_format" and value not in _FORMATS:
                raise InvalidArgument(
                    f"log setting 'log_format' must be one of {list(_FORMATS)}, not {value!r}"
                )
            wanted[_LOG_KEYS[key]] = value
        if wanted and self._shared():
            raise FailedPrecondition(
                "log settings cannot be changed at run time on a server with several worker "
                "processes (a change would reach one of them); set them at start"
            )
        if wanted:
            logs.reconfigure(**wanted)
        return self.get()
