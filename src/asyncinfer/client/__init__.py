"""Clients for any Context-defined service: sync, async and siege (open-loop) load clients."""

from ._method import Method, to_error
from .aio import AsyncClient
from .report import LatencyRecorder, Report
from .siege import Constant, Cyclic, Linear, Rate, Siege, SiegeResult
from .sync import SyncClient

__all__ = [
    "AsyncClient",
    "Constant",
    "Cyclic",
    "LatencyRecorder",
    "Linear",
    "Method",
    "Rate",
    "Report",
    "Siege",
    "SiegeResult",
    "SyncClient",
    "to_error",
]
