"""Latency recording and the summary every load client reports (text and JSON)."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import numpy as np

from ..errors import RpcError

__all__ = ["LatencyRecorder", "Report"]


@dataclasses.dataclass(frozen=True)
class Report:
    """What a load run measured. Latencies in milliseconds; ``rate`` is successful calls/s."""

    mode: str
    calls: int
    ok: int
    failed: int
    seconds: float
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        errors = "".join(f" {code}={n}" for code, n in sorted(self.errors.items()))
        return (
            f"[{self.mode}] {self.ok}/{self.calls} ok in {self.seconds:.2f}s: "
            f"{self.rate:,.0f} calls/s, "
            f"p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.2f} ms{errors}"
        )


class LatencyRecorder:
    """Collects successful call latencies and error codes; bounded by the run's call count."""

    def __init__(self) -> None:
        self._latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.started = time.perf_counter()

    @property
    def ok(self) -> int:
        return len(self._latencies)

    @property
    def calls(self) -> int:
        return self.ok + sum(self.errors.values())

    def success(self, seconds: float) -> None:
        self._latencies.append(seconds)

    def failure(self, error: BaseException) -> None:
        code = error.code.name if isinstance(error, RpcError) else type(error).__name__
        self.errors[code] += 1

    def percentiles_ms(self, start: int = 0) -> tuple[float, float, float, float]:
        """p50, p90, p99 and max of the latencies recorded since index ``start``."""
        window = self._latencies[start:]
        if not window:
            return (0.0, 0.0, 0.0, 0.0)
        p50, p90, p99 = np.percentile(window, [50, 90, 99]) * 1e3
        return (float(p50), float(p90), float(p99), max(window) * 1e3)

    def report(self, mode: str, seconds: float | None = None) -> Report:
        elapsed = time.perf_counter() - self.started if seconds is None else seconds
        p50, p90, p99, worst = self.percentiles_ms()
        return Report(
            mode=mode,
            calls=self.calls,
            ok=self.ok,
            failed=self.calls - self.ok,
            seconds=elapsed,
            rate=self.ok / elapsed if elapsed > 0 else 0.0,
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            max_ms=worst,
            errors=dict(self.errors),
        )
