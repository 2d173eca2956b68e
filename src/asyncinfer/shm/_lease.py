"""The ``with`` protocol every shared-memory lease shares: leaving the block releases it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ReleasedOnExit"]


class ReleasedOnExit:
    """Mixin for leases: ``with lease:`` calls ``release()`` on every way out of the block."""

    __slots__ = ()

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
