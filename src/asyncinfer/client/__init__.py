"""Clients for any Context-defined service: sync, async and siege (open-loop) load clients, and
a channel pool for services that call other services."""

from ._method import Method, to_error
from .aio import AsyncClient
from .pool import ChannelPool
from .report import LatencyRecorder, Report
from .siege import Constant, Cyclic, Linear, Rate, Siege, SiegeResult
from .sync import SyncClient

__all__ = [
    "AsyncClient",
    "ChannelPool",
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
