"""Trace settings: tritonserver's ``--trace-config`` flags and the TraceSetting state that
clients read and change at run time, for the server and per model, with Triton's semantics.

- ``trace_level``: ``OFF``, or ``TIMESTAMPS`` and/or ``TENSORS`` (TENSORS adds each input's
  and output's name, datatype and shape to the request span; never the data).
- ``trace_rate``: trace one call in every N that carries no sampled W3C parent; a call whose
  caller sent a ``traceparent`` follows the caller's sampled flag, so a chain of services
  records whole traces (OpenTelemetry's parent-based sampling).
- ``trace_count``: how many more traces to record (each recorded trace takes one); -1 for no
  limit. At 0 tracing stops, and the settings read 0.
- A model without settings of its own has the server's (and shares its rate and count); a
  setting given for a model is that model's own; an empty value clears it again (the model
  falls back to the server's), and an empty value for the server restores the value it was
  started with.
- ``trace_mode`` is ``opentelemetry``, the only mode; ``trace_file`` and ``log_frequency``
  belong to Triton's own file mode and cannot be set here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, FailedPrecondition, InvalidArgument

__all__ = ["DEFAULT_URL", "LEVELS", "TRACE_KEYS", "TraceConfig", "TraceSettings"]

LEVELS = ("OFF", "TIMESTAMPS", "TENSORS")
#: Triton's default OTLP/HTTP endpoint (an OpenTelemetry collector on this machine).
DEFAULT_URL = "http://localhost:4318/v1/traces"
#: The settings Triton's clients read; the last three are fixed in this server.
TRACE_KEYS = (
    "trace_level",
    "trace_rate",
    "trace_count",
    "trace_mode",
    "trace_file",
    "log_frequency",
)
_FIXED = {"trace_mode": ["opentelemetry"], "trace_file": [""], "log_frequency": ["0"]}
#: BatchSpanProcessor arguments tritonserver takes as ``opentelemetry,bsp_*=N``.
_BSP = ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size")


@dataclasses.dataclass(frozen=True)
class TraceConfig:
    """Tracing as a server starts with it (``--trace-config``); off unless ``level`` says.

    ``exporter``: an OpenTelemetry SpanExporter to use instead of OTLP/HTTP to ``url`` (tests
    pass the SDK's InMemorySpanExporter; in-process only, it does not travel to workers).
    """

    level: tuple[str, ...] = ("OFF",)
    rate: int = 1000
    count: int = -1
    url: str = DEFAULT_URL
    resource: tuple[tuple[str, str], ...] = ()
    batch: tuple[tuple[str, int], ...] = ()
    exporter: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            _check_levels(list(self.level))
            _check_number("trace_rate", self.rate, 1)
            _check_number("trace_count", self.count, -1)
        except InvalidArgument as exc:
            raise ConfigError(f"--trace-config: {exc.message}") from None

    @property
    def enabled(self) -> bool:
        return self.level != ("OFF",)

    @classmethod
    def parse(cls, flags: Sequence[str]) -> TraceConfig:
        """The config of tritonserver's ``--trace-config`` values, e.g. ``rate=100``,
        ``level=TIMESTAMPS``, ``opentelemetry,url=http://collector:4318/v1/traces``,
        ``opentelemetry,resource=service.name=glue``; ``level`` may repeat."""
        fields: dict[str, Any] = {}
        levels: list[str] = []
        resource: list[tuple[str, str]] = []
        batch: list[tuple[str, int]] = []
        for flag in flags:
            mode, _, setting = flag.rpartition(",")
            key, sep, value = setting.partition("=")
            if not sep:
                raise ConfigError(f"--trace-config {flag!r}: expected [MODE,]SETTING=VALUE")
            if mode == "triton" or (not mode and key == "mode" and value == "triton"):
                raise ConfigError(
                    "--trace-config: Triton's own trace mode (JSON trace files) is not "
                    "supported; this server traces with OpenTelemetry (mode=opentelemetry)"
                )
            if mode not in ("", "opentelemetry"):
                raise ConfigError(f"--trace-config {flag!r}: unknown trace mode {mode!r}")
            if not mode and key == "mode":
                if value != "opentelemetry":
                    raise ConfigError(f"--trace-config: unknown trace mode {value!r}")
            elif not mode and key == "level":
                levels.append(value.upper())
            elif not mode and key in ("rate", "count"):
                fields[key] = _int_flag(key, value)
            elif mode and key == "url":
                fields["url"] = value
            elif mode and key == "resource":
                name, sep, attribute = value.partition("=")
                if not sep or not name:
                    raise ConfigError(f"--trace-config {flag!r}: resource takes KEY=VALUE")
                resource.append((name, attribute))
            elif mode and key in _BSP:
                batch.append((key, _int_flag(key, value)))
            else:
                raise ConfigError(
                    f"--trace-config {flag!r}: unknown setting; global settings are mode, "
                    "level, rate and count; opentelemetry settings are url, resource and "
                    f"{', '.join(_BSP)}"
                )
        if levels:
            fields["level"] = tuple(levels)
        return cls(resource=tuple(resource), batch=tuple(batch), **fields)


def _int_flag(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--trace-config {key}={value!r}: expected an integer") from None


def _check_levels(levels: list[str]) -> None:
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels or ("OFF" in levels and len(levels) > 1):
        raise InvalidArgument(
            f"trace_level must be OFF, or one or both of TIMESTAMPS and TENSORS; got {levels}"
        )


def _check_number(key: str, value: int, lowest: int) -> None:
    if value < lowest:
        raise InvalidArgument(f"{key} must be an integer >= {lowest}, got {value}")


def _number(key: str, values: list[str], lowest: int) -> int:
    if len(values) != 1:
        raise InvalidArgument(f"{key} takes one value, got {values}")
    try:
        number = int(values[0])
    except ValueError:
        raise InvalidArgument(f"{key} must be an integer, got {values[0]!r}") from None
    _check_number(key, number, lowest)
    return number


class TraceSettings:
    """The trace settings in force, for the server ("") and the models with their own.

    ``active`` is False while no scope traces anything: the one attribute every call's path
    reads when tracing is off. ``sample`` is called only when it is True.
    """

    def __init__(self, config: TraceConfig | None = None) -> None:
        self._lock = threading.Lock()  # the HTTP front end and gRPC share this state
        self._on_enable: Callable[[], None] = lambda: None
        self.shared_by_workers = False
        self.reset(config or TraceConfig())

    def reset(self, config: TraceConfig, *, workers: int = 1) -> None:
        """Back to ``config``: model settings dropped, counters restarted."""
        self._start: dict[str, Any] = {
            "trace_level": list(config.level),
            "trace_rate": config.rate,
            "trace_count": config.count,
        }
        self._scopes: dict[str, dict[str, Any]] = {"": dict(self._start)}
        self._seen: dict[str, int] = {"": 0}
        self.shared_by_workers = workers > 1
        self._refresh()

    def on_enable(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` before a change turns tracing on (it may refuse by raising)."""
        self._on_enable = hook

    # ------------------------------------------------------------------ reading

    def get(self, model: str = "") -> dict[str, list[str]]:
        """The settings in force for ``model`` (the server's when empty), as Triton's strings."""
        with self._lock:
            return self._strings(model)

    def _strings(self, model: str) -> dict[str, list[str]]:
        own = self._scopes.get(model, {})
        server = self._scopes[""]
        value = {key: own.get(key, server[key]) for key in server}
        return {
            "trace_level": list(value["trace_level"]),
            "trace_rate": [str(value["trace_rate"])],
            "trace_count": [str(value["trace_count"])],
            **{key: list(fixed) for key, fixed in _FIXED.items()},
        }

    def has_own(self, model: str) -> bool:
        return model in self._scopes and model != ""

    def levels(self, model: str = "") -> list[str]:
        scope = self._scopes.get(model, {})
        return list(scope.get("trace_level", self._scopes[""]["trace_level"]))

    # ------------------------------------------------------------------ changing

    def update(self, changes: Mapping[str, Sequence[str]], model: str = "") -> dict[str, list[str]]:
        """Apply ``changes`` (checked first, all or nothing); the settings in force after."""
        parsed = self._parse(changes)
        if parsed and self.shared_by_workers:
            raise FailedPrecondition(
                "trace settings cannot be changed at run time on a server with several "
                "worker processes (a change would reach one of them); set them at start with "
                "--trace-config"
            )
        with self._lock:
            scope = self._scopes.setdefault(model, {}) if model else self._scopes[""]
            turning_on = any(
                key == "trace_level" and value not in (None, ["OFF"])
                for key, value in parsed.items()
            )
            if turning_on and not self.active:
                self._on_enable()
            for key, value in parsed.items():
                if value is not None:
                    scope[key] = value
                elif model:
                    scope.pop(key, None)
                else:
                    scope[key] = self._start[key]
            if model and not scope:
                del self._scopes[model]
            self._seen.setdefault(model, 0)
            self._refresh()
            return self._strings(model)

    def _parse(self, changes: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        parsed: dict[str, Any] = {}
        for key, raw in changes.items():
            values = list(raw)
            if key not in TRACE_KEYS:
                raise InvalidArgument(
                    f"unknown trace setting '{key}'; the settings are {sorted(TRACE_KEYS)}"
                )
            if key in _FIXED:
                if values and values != _FIXED[key]:
                    raise InvalidArgument(
                        f"trace setting '{key}' cannot be changed: it is {_FIXED[key]} in this "
                        "server, which traces with OpenTelemetry only (trace_file and "
                        "log_frequency are Triton's file mode)"
                    )
                continue
            if not values:
                parsed[key] = None
            elif key == "trace_level":
                _check_levels(values)
                parsed[key] = values
            else:
                parsed[key] = _number(key, values, 1 if key == "trace_rate" else -1)
        return parsed

    def _refresh(self) -> None:
        self.active = any(
            scope.get("trace_level", ["OFF"]) != ["OFF"] for scope in self._scopes.values()
        )

    # ------------------------------------------------------------------ sampling

    def sample(self, model: str = "", parent_sampled: bool | None = None) -> bool:
        """Whether to trace this call (of ``model``, or the server's own scope).

        ``parent_sampled``: the caller's W3C sampled flag, None when it sent no parent.
        """
        with self._lock:
            own = self._scopes.get(model) if model else None
            server = self._scopes[""]
            scope_name = model if own is not None else ""
            scope = own if own is not None else server
            if scope.get("trace_level", server["trace_level"]) == ["OFF"]:
                return False
            if parent_sampled is None:
                rate = scope.get("trace_rate", server["trace_rate"])
                self._seen[scope_name] = seen = self._seen.get(scope_name, 0) + 1
                if seen % rate:
                    return False
            elif not parent_sampled:
                return False
            counter = scope if "trace_count" in scope else server
            remaining = counter["trace_count"]
            if remaining == 0:
                return False
            if remaining > 0:
                counter["trace_count"] = remaining - 1
            return True
