"""The siege client: open-loop load at a scheduled rate, whatever the server's answers take.

Calls are sent on a schedule (constant, linear or cyclic rate), not when earlier calls return,
so a slow server shows up as growing latency and in-flight count instead of a politely lower
rate. An in-flight cap bounds the client's memory: when it is reached the scheduled calls are
skipped (counted as ``throttled``) and a backoff warning is printed, because the server is not
keeping up. A progress line comes every ``progress_interval`` seconds; the result holds the
summary, the timeline of progress windows, and is written as JSON on request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..errors import RpcError, UsageError
from ._method import Request
from .aio import AsyncClient, RequestSource
from .report import LatencyRecorder, Report

__all__ = ["Constant", "Cyclic", "Linear", "Rate", "Siege", "SiegeResult"]


class Rate(Protocol):
    """A rate schedule: calls per second at time t, and how many calls are due by t."""

    def at(self, t: float) -> float: ...

    def due(self, t: float) -> float:
        """The integral of the rate from 0 to t."""
        ...


@dataclasses.dataclass(frozen=True)
class Constant:
    rate: float

    def at(self, t: float) -> float:
        return self.rate

    def due(self, t: float) -> float:
        return self.rate * t


@dataclasses.dataclass(frozen=True)
class Linear:
    """From ``start`` to ``end`` calls/s over ``over`` seconds, then ``end``."""

    start: float
    end: float
    over: float

    def at(self, t: float) -> float:
        return self.start + (self.end - self.start) * min(t, self.over) / self.over

    def due(self, t: float) -> float:
        ramp = min(t, self.over)
        ramped = self.start * ramp + (self.end - self.start) * ramp * ramp / (2 * self.over)
        return ramped + self.end * max(0.0, t - self.over)


@dataclasses.dataclass(frozen=True)
class Cyclic:
    """A sine between ``low`` and ``high`` calls/s with the given period, starting at the mean."""

    low: float
    high: float
    period: float

    def at(self, t: float) -> float:
        mean, amplitude = (self.high + self.low) / 2, (self.high - self.low) / 2
        return mean + amplitude * math.sin(2 * math.pi * t / self.period)

    def due(self, t: float) -> float:
        mean, amplitude = (self.high + self.low) / 2, (self.high - self.low) / 2
        omega = 2 * math.pi / self.period
        return mean * t + amplitude * (1 - math.cos(omega * t)) / omega


def _check_rate(rate: Rate) -> None:
    values = {
        "rate": getattr(rate, "rate", 1.0),
        "start": getattr(rate, "start", 1.0),
        "end": getattr(rate, "end", 1.0),
        "low": getattr(rate, "low", 1.0),
        "high": getattr(rate, "high", 1.0),
    }
    negative = {k: v for k, v in values.items() if v < 0}
    if negative:
        raise UsageError(f"rates are calls per second >= 0; got {negative}")
    for name in ("over", "period"):
        if getattr(rate, name, 1.0) <= 0:
            raise UsageError(f"{type(rate).__name__}.{name} must be > 0 seconds")


@dataclasses.dataclass(frozen=True)
class Window:
    """One progress window."""

    t: float
    target_rate: float
    rate: float
    in_flight: int
    p50_ms: float
    p99_ms: float
    ok: int
    failed: int
    throttled: int


@dataclasses.dataclass(frozen=True)
class SiegeResult:
    report: Report
    throttled: int
    max_in_flight_seen: int
    timeline: list[Window]

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.report.to_dict(),
            "throttled": self.throttled,
            "max_in_flight_seen": self.max_in_flight_seen,
            "timeline": [dataclasses.asdict(w) for w in self.timeline],
        }

    def write_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=2)


class Caller(Protocol):
    """What a Siege drives: an AsyncClient (gRPC) or an HttpClient (an HTTP endpoint)."""

    def call(self, request: Any) -> Awaitable[Any]: ...


class Siege:
    """Open-loop load on one RPC (or HTTP endpoint) through an AsyncClient (or HttpClient)."""

    def __init__(
        self,
        client: AsyncClient | Caller,
        rate: Rate,
        *,
        duration: float,
        max_in_flight: int = 1000,
        progress_interval: float = 0.5,
        on_progress: Callable[[str], None] | None = print,
    ) -> None:
        if not duration > 0:
            raise UsageError(
                f"duration must be > 0 seconds: load loops are bounded; got {duration}"
            )
        if max_in_flight < 1:
            raise UsageError(f"max_in_flight must be >= 1, not {max_in_flight}")
        _check_rate(rate)
        self.client = client
        self.rate = rate
        self.duration = duration
        self.max_in_flight = max_in_flight
        self.progress_interval = progress_interval
        self.on_progress = on_progress

    async def run(self, request: RequestSource) -> SiegeResult:
        make = request if callable(request) else (lambda _i: request)
        run = _SiegeRun(self, make)
        return await run.execute()


class _SiegeRun:
    """The state of one siege: schedule, calls in flight, windows."""

    def __init__(self, siege: Siege, make: Callable[[int], Request]) -> None:
        self.siege = siege
        self.make = make
        self.recorder = LatencyRecorder()
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.issued = 0
        self.throttled = 0
        self.timeline: list[Window] = []
        self.warned_window = -1

    async def execute(self) -> SiegeResult:
        start = time.perf_counter()
        async with asyncio.TaskGroup() as outer:
            reporter = outer.create_task(self._report_progress(start))
            async with asyncio.TaskGroup() as calls:
                await self._schedule(calls, start)
                # Sending stops at the end of the duration; calls in flight finish first (each
                # is bounded by its own timeout) so that the summary counts every call sent.
            reporter.cancel()
        seconds = time.perf_counter() - start
        return SiegeResult(
            report=self.recorder.report("siege", seconds),
            throttled=self.throttled,
            max_in_flight_seen=self.max_in_flight_seen,
            timeline=self.timeline,
        )

    async def _schedule(self, group: asyncio.TaskGroup, start: float) -> None:
        rate = self.siege.rate
        while (t := time.perf_counter() - start) < self.siege.duration:
            due = int(rate.due(t))
            while self.issued + self.throttled < due:
                if self.in_flight >= self.siege.max_in_flight:
                    self.throttled += due - self.issued - self.throttled
                    self._warn_backoff(t)
                    break
                group.create_task(self._one(self.issued))
                self.issued += 1
            current = rate.at(t)
            await asyncio.sleep(min(0.01, 1.0 / current) if current > 0 else 0.01)

    async def _one(self, index: int) -> None:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        started = time.perf_counter()
        try:
            await self.siege.client.call(self.make(index))
        except RpcError as exc:
            self.recorder.failure(exc)
        else:
            self.recorder.success(time.perf_counter() - started)
        finally:
            self.in_flight -= 1

    def _warn_backoff(self, t: float) -> None:
        window = int(t / self.siege.progress_interval)
        if window != self.warned_window and self.siege.on_progress is not None:
            self.warned_window = window
            self.siege.on_progress(
                f"[siege] WARNING t={t:.1f}s: {self.siege.max_in_flight} calls in flight "
                "(the cap); "
                f"backing off, the server is not keeping up with {self.siege.rate.at(t):,.0f}/s"
            )

    async def _report_progress(self, start: float) -> None:
        interval = self.siege.progress_interval
        seen_ok = seen_failed = seen_throttled = 0
        while True:
            await asyncio.sleep(interval)
            t = time.perf_counter() - start
            ok, failed = self.recorder.ok, self.recorder.calls - self.recorder.ok
            p50, _p90, p99, _max = self.recorder.percentiles_ms(seen_ok)
            window = Window(
                t=round(t, 3),
                target_rate=self.siege.rate.at(min(t, self.siege.duration)),
                rate=(ok - seen_ok) / interval,
                in_flight=self.in_flight,
                p50_ms=p50,
                p99_ms=p99,
                ok=ok - seen_ok,
                failed=failed - seen_failed,
                throttled=self.throttled - seen_throttled,
            )
            seen_ok, seen_failed, seen_throttled = ok, failed, self.throttled
            self.timeline.append(window)
            if self.siege.on_progress is not None:
                self.siege.on_progress(
                    f"[siege] t={window.t:5.1f}s target={window.target_rate:,.0f}/s "
                    f"rate={window.rate:,.0f}/s in_flight={window.in_flight} "
                    f"p50={window.p50_ms:.2f}ms p99={window.p99_ms:.2f}ms "
                    f"ok={window.ok} err={window.failed}"
                )
