"""The server's trace and log settings as Triton's clients read and change them at run time: the
one state behind gRPC's TraceSetting and LogSettings (and HTTP's ``/v2/trace/setting`` and
``/v2/logging``).

Tracing is not built into this server yet, so the trace settings say so: ``trace_level`` is
``OFF``. Both kinds read as they are; a change to a value they do not already have is refused
with UNIMPLEMENTED naming the setting, rather than accepted and then ignored. Keys are Triton's;
an unknown key is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import logs
from ..errors import InvalidArgument, Unimplemented

__all__ = ["LogSettings", "LogValue", "TraceSettings"]

#: Triton's trace settings and their values when tracing is off (every value is a string list).
TRACE_DEFAULTS: dict[str, list[str]] = {
    "trace_file": [""],
    "trace_level": ["OFF"],
    "trace_rate": ["1000"],
    "trace_count": ["-1"],
    "log_frequency": ["0"],
    "trace_mode": ["triton"],
}

LogValue = bool | int | str


class TraceSettings:
    """The trace settings of the server and of each model (a model without its own has the
    server's)."""

    def __init__(self) -> None:
        self._server = {key: list(value) for key, value in TRACE_DEFAULTS.items()}
        self._models: dict[str, dict[str, list[str]]] = {}

    def get(self, model: str = "") -> dict[str, list[str]]:
        """The settings in force for ``model`` (the server's when empty)."""
        settings = {key: list(value) for key, value in self._server.items()}
        settings.update({k: list(v) for k, v in self._models.get(model, {}).items()})
        return settings

    def update(self, changes: Mapping[str, Sequence[str]], model: str = "") -> dict[str, list[str]]:
        """Apply ``changes`` (an empty value list clears a model's own setting) and return the
        settings in force; refused when a change would set a value tracing cannot honour."""
        current = self.get(model)
        for key, values in changes.items():
            if key not in TRACE_DEFAULTS:
                raise InvalidArgument(
                    f"unknown trace setting '{key}'; the settings are {sorted(TRACE_DEFAULTS)}"
                )
            wanted = list(values) or (self._server[key] if model else TRACE_DEFAULTS[key])
            if wanted != current[key]:
                raise Unimplemented(
                    f"trace setting '{key}' cannot be changed to {wanted}: tracing is not "
                    f"supported by this server yet (it stays {current[key]}, trace_level OFF)"
                )
        return current


class LogSettings:
    """The log settings of this process, read from its logging configuration (logs.py)."""

    def get(self) -> dict[str, LogValue]:
        configured = logs.settings() or {}
        return {
            "log_file": str(configured.get("file", "")),  # "": stderr
            "log_info": bool(configured.get("info", True)),
            "log_warning": bool(configured.get("warning", True)),
            "log_error": bool(configured.get("error", True)),
            "log_verbose_level": int(configured.get("verbose", 0)),
            "log_format": str(configured.get("format", "default")),
        }

    def update(self, changes: Mapping[str, LogValue]) -> dict[str, LogValue]:
        """Return the settings in force; a change to a value they do not have is refused."""
        current = self.get()
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
            if value != current[key]:
                raise Unimplemented(
                    f"log setting '{key}' cannot be changed to {value!r} at run time: this "
                    f"server does not support it yet (it stays {current[key]!r}; set it at "
                    "start, e.g. --log-verbose and --log-format)"
                )
        return current
