"""The protocol RPCs this server does not serve yet: trace and log settings.

Each answers UNIMPLEMENTED with a message naming what is missing, so a client learns it at
the first call instead of getting a half-working feature.
"""

from __future__ import annotations

from typing import Any

from ...context import UnaryContext, rpc_method
from ...errors import Unimplemented
from ...pb.inference import grpc_service_pb2 as pb
from .control import SERVICE, InferenceResources

__all__ = ["UNIMPLEMENTED"]

_FEATURES = {
    "TraceSetting": "tracing",
    "LogSettings": "log settings",
}


def _context(method_name: str, feature: str) -> type[UnaryContext[Any, Any, InferenceResources]]:
    message = f"{method_name}: {feature} is not supported by this server yet"

    async def execute(self: Any, request: Any) -> Any:
        raise Unimplemented(message)

    return type(
        method_name,
        (UnaryContext,),
        {
            "method": rpc_method(pb, SERVICE, method_name),
            "execute": execute,
            "__doc__": f"Answers UNIMPLEMENTED: {feature} is not supported yet.",
            "__module__": __name__,
        },
    )


#: One Context class per unimplemented RPC.
UNIMPLEMENTED: tuple[type[UnaryContext[Any, Any, InferenceResources]], ...] = tuple(
    _context(name, feature) for name, feature in _FEATURES.items()
)
