"""Server reflection over several descriptor pools: the default one and private ones.

Services whose messages live in a private pool (the inference protocol does, so that
tritonclient can be imported beside it) are invisible to a reflection servicer that only
searches protobuf's default pool. ``PoolChain`` answers the lookups grpc_reflection makes by
asking each pool in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pool import DescriptorPool

__all__ = ["PoolChain", "pools_of"]


class PoolChain:
    """The lookups of a DescriptorPool that reflection uses, over several pools in order."""

    def __init__(self, pools: Iterable[DescriptorPool]) -> None:
        self.pools = list(pools)

    def _first(self, method: str, *args: Any) -> Any:
        for pool in self.pools:
            try:
                return getattr(pool, method)(*args)
            except KeyError:
                continue
        raise KeyError(args[0] if args else method)

    def FindFileByName(self, name: str) -> Any:  # DescriptorPool's method names
        return self._first("FindFileByName", name)

    def FindFileContainingSymbol(self, symbol: str) -> Any:
        return self._first("FindFileContainingSymbol", symbol)

    def FindMessageTypeByName(self, name: str) -> Any:
        return self._first("FindMessageTypeByName", name)

    def FindExtensionByNumber(self, message: Any, number: int) -> Any:
        return message.file.pool.FindExtensionByNumber(message, number)

    def FindAllExtensions(self, message: Any) -> Any:
        return message.file.pool.FindAllExtensions(message)


def pools_of(files: Iterable[Any]) -> PoolChain | None:
    """A chain of the pools ``files`` live in, then the default pool; None if all are default."""
    default = descriptor_pool.Default()
    private: list[DescriptorPool] = []
    for file in files:
        if file.pool is not default and all(file.pool is not p for p in private):
            private.append(file.pool)
    return PoolChain([*private, default]) if private else None
