"""Latency distributions of inference requests: tritonserver's ``--metrics-config`` and the
per-model histograms it turns on.

- ``histogram_latencies=true``: per model version, histograms in milliseconds of the time to
  the first response (Triton's ``nv_inference_first_response_histogram_ms``; for a model that
  is not decoupled, the whole request), and asyncinfer's own of the request, queue and compute
  (infer) durations: ``asyncinfer_inference_{request,queue,compute_infer}_histogram_ms``.
- ``histogram_buckets=0.5,1,5,...``: their bucket bounds in ms (asyncinfer's key; Triton sets
  buckets per model).
- ``counter_latencies=false``: leave out Triton's cumulative ``nv_inference_*_duration_us``.
- ``summary_latencies=true`` is refused: a summary's quantiles are computed inside one process
  and cannot be added up across worker processes (a sum of two p99s is no p99); histograms
  can, and ``histogram_quantile()`` gives any quantile from the summed buckets.

The switch is per process (each worker sets it from the same flags as it starts), read when a
model version is loaded; with it off a request pays nothing for histograms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..admission import Histogram
from ..errors import ConfigError

__all__ = ["DEFAULT_BUCKETS_MS", "LatencyHistograms", "MetricsConfig", "histograms_for_new_models"]

DEFAULT_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """What ``--metrics-config`` asks of the inference metrics."""

    histogram_latencies: bool = False
    counter_latencies: bool = True
    histogram_buckets: tuple[float, ...] = DEFAULT_BUCKETS_MS

    def __post_init__(self) -> None:
        buckets = self.histogram_buckets
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] < 0:
            raise ConfigError(
                "--metrics-config histogram_buckets must be increasing, distinct bounds >= 0 "
                f"in milliseconds, got {list(buckets)}"
            )

    @classmethod
    def parse(cls, flags: Sequence[str]) -> MetricsConfig:
        fields: dict[str, object] = {}
        for flag in flags:
            key, sep, value = flag.partition("=")
            if not sep:
                raise ConfigError(f"--metrics-config {flag!r}: expected SETTING=VALUE")
            if key in ("histogram_latencies", "counter_latencies"):
                fields[key] = _bool(key, value)
            elif key == "histogram_buckets":
                fields[key] = _bounds(value)
            elif key == "summary_latencies":
                if _bool(key, value):
                    raise ConfigError(
                        "--metrics-config summary_latencies=true is not supported: summary "
                        "quantiles cannot be summed across worker processes; use "
                        "histogram_latencies=true and histogram_quantile() over the buckets"
                    )
            else:
                raise ConfigError(
                    f"--metrics-config {flag!r}: unknown setting; the settings are "
                    "histogram_latencies, histogram_buckets, counter_latencies and "
                    "summary_latencies"
                )
        return cls(**fields)  # type: ignore[arg-type]


def _bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"--metrics-config {key}={value!r}: expected true or false")


def _bounds(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        raise ConfigError(
            f"--metrics-config histogram_buckets={value!r}: expected comma-separated numbers "
            "(milliseconds)"
        ) from None


class LatencyHistograms:
    """One model version's latency histograms, in milliseconds."""

    __slots__ = ("compute_infer", "first_response", "queue", "request")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.first_response = Histogram(buckets)
        self.request = Histogram(buckets)
        self.queue = Histogram(buckets)
        self.compute_infer = Histogram(buckets)

    def observe(self, total_ns: int, queue_ns: int, infer_ns: int) -> None:
        """One request answered (durations in nanoseconds)."""
        self.request.observe(total_ns / 1e6)
        self.queue.observe(queue_ns / 1e6)
        self.compute_infer.observe(infer_ns / 1e6)


_buckets: tuple[float, ...] | None = None


def configure(config: MetricsConfig) -> None:
    """This process's switch: models loaded from now on keep histograms when it is on."""
    global _buckets
    _buckets = config.histogram_buckets if config.histogram_latencies else None


def histograms_for_new_models() -> LatencyHistograms | None:
    """The histograms a model version being loaded keeps; None while they are off."""
    return None if _buckets is None else LatencyHistograms(_buckets)
