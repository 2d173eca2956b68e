"""The Backend protocol: what a scheduler needs from a loaded model version to run requests.

A backend turns a list of requests into one Response per request, in order. It owns its
instances (python Model objects, ONNX Runtime sessions) and leases one per ``execute``, so
``instance_count`` concurrent executes run on distinct instances and more wait for one; how
many a config asks for is :func:`instance_count`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ...pb.inference.model_config_pb2 import ModelConfig
from ..python_model import Request, Response

__all__ = ["Backend", "backend_healthy", "instance_count", "mark_cancelled"]


@runtime_checkable
class Backend(Protocol):
    """One loaded version of a model as the schedulers see it."""

    name: str
    version: int

    @property
    def instance_count(self) -> int:
        """How many executes can run at once (the instance group's total count)."""
        ...

    async def execute(self, requests: list[Request]) -> list[Response]:
        """One Response per request, in order; a Response with ``error`` fails only its request.

        Raising fails every request of the call.
        """
        ...

    async def unload(self) -> None:
        """Release the instances; no execute runs after this returns."""
        ...


def instance_count(config: ModelConfig) -> int:
    """Instances the config's instance groups ask for (a group's count 0 means 1; none: 1)."""
    return sum(max(group.count, 1) for group in config.instance_group) or 1


def backend_healthy(backend: object) -> bool:
    """Whether ``backend`` can run a request now: False only for a backend that says so
    (``healthy``), such as process instances that all died and could not be restarted."""
    healthy = getattr(backend, "healthy", True)
    return bool(healthy)


def mark_cancelled(requests: list[Request]) -> None:
    """The call running ``requests`` was cancelled (its callers went away or its deadline
    passed): tell the running execute through ``Request.cancelled()`` now, not when it ends."""
    for request in requests:
        cancellation = request._cancellation
        if cancellation is not None:
            cancellation.cancel()
