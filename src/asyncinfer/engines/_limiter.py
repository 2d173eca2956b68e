"""The two-level limiter of trtlab: per-engine execution contexts and shared compute workspaces.

An inference first leases one of its engine's execution contexts (level one: how many requests
of this model may be prepared at once), prepares its inputs, then leases a workspace from a
pool that may be shared by several engines (level two: how many computations run at once on the
device or the CPUs) only for the compute itself, and returns it the moment compute ends, before
outputs are collected::

    async with limiter.context(timeout) as ctx:
        prepare(ctx.item)
        async with limiter.workspace(timeout) as ws:
            await compute(ctx.item, ws.item)
        collect(ctx.item)

TensorRT uses it with execution contexts created without device memory and device workspaces;
ONNX Runtime with sessions and compute tokens; Python engines with model instances and tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from ..pools import Pool, _Acquire

__all__ = ["ComputeToken", "Limiter", "compute_tokens"]

C = TypeVar("C")
W = TypeVar("W")


@dataclasses.dataclass(frozen=True, slots=True)
class ComputeToken:
    """A workspace that is only permission to compute (CPU engines need no device memory)."""

    index: int


def compute_tokens(count: int, *, name: str = "compute") -> Pool[ComputeToken]:
    """A workspace pool of ``count`` tokens; share it between engines to cap total compute."""
    return Pool([ComputeToken(i) for i in range(count)], name=name)


class Limiter(Generic[C, W]):
    """Execution contexts of one engine plus a (possibly shared) workspace pool."""

    def __init__(
        self, contexts: Sequence[C], workspaces: Pool[W], *, name: str, timeout: float | None = None
    ) -> None:
        self.contexts: Pool[C] = Pool(contexts, name=f"{name}.contexts", timeout=timeout)
        self.workspaces = workspaces
        self._timeout = timeout

    def context(self, timeout: float | None = None) -> _Acquire[C]:
        return self.contexts.acquire(self._timeout if timeout is None else timeout)

    def workspace(self, timeout: float | None = None) -> _Acquire[W]:
        return self.workspaces.acquire(self._timeout if timeout is None else timeout)

    async def close(self) -> None:
        """Refuse new requests, let the ones holding or awaiting a context finish, then close.

        The workspace pool may be shared with other engines: its owner closes it.
        """
        await self.contexts.drain()

    def statistics(self) -> dict[str, Any]:
        return {
            "contexts": dataclasses.asdict(self.contexts.statistics()),
            "workspaces": dataclasses.asdict(self.workspaces.statistics()),
        }
