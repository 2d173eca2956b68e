"""The exception tree of asyncinfer and the only mapping between it and gRPC status codes.

::

    AsyncInferError
    ├── RpcError                  client-visible; each subclass is exactly one status code
    │   ├── Cancelled             CANCELLED
    │   ├── Unknown               UNKNOWN (unexpected server errors, with an error id)
    │   ├── InvalidArgument       INVALID_ARGUMENT
    │   │   └── ModelLoadFailed   a model that cannot be loaded (config, files, initialize)
    │   ├── DeadlineExceeded      DEADLINE_EXCEEDED
    │   ├── NotFound              NOT_FOUND
    │   ├── AlreadyExists         ALREADY_EXISTS
    │   ├── PermissionDenied      PERMISSION_DENIED
    │   ├── ResourceExhausted     RESOURCE_EXHAUSTED
    │   ├── FailedPrecondition    FAILED_PRECONDITION
    │   ├── Aborted               ABORTED
    │   ├── OutOfRange            OUT_OF_RANGE
    │   ├── Unimplemented         UNIMPLEMENTED
    │   ├── Internal              INTERNAL (asyncinfer's own bugs)
    │   ├── Unavailable           UNAVAILABLE
    │   │   └── InstanceBroken    a model instance whose process died and cannot restart
    │   ├── DataLoss              DATA_LOSS
    │   └── Unauthenticated       UNAUTHENTICATED
    ├── ConfigError               bad configuration, raised at start-up or class definition
    └── UsageError                an API used the wrong way, raised locally, never sent

Servers raise ``RpcError`` subclasses to answer with a status; clients turn a received status
back into the same class with :func:`from_status`.
"""

from __future__ import annotations

import logging
import uuid
from typing import ClassVar

import grpc

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncInferError",
    "Cancelled",
    "ConfigError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InstanceBroken",
    "Internal",
    "InvalidArgument",
    "ModelLoadFailed",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "RpcError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "UsageError",
    "from_status",
    "internal_error",
]

log = logging.getLogger("asyncinfer.errors")


class AsyncInferError(Exception):
    """The base of every error asyncinfer raises on purpose."""


class ConfigError(AsyncInferError):
    """Configuration that cannot work; raised before anything serves, never sent to a client."""


class UsageError(AsyncInferError):
    """A local API used the wrong way (a lease used after release, say); never sent."""


class RpcError(AsyncInferError):
    """An error a client sees: one gRPC status code and a message for a person."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class Cancelled(RpcError):
    code = grpc.StatusCode.CANCELLED


class Unknown(RpcError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(RpcError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(RpcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(RpcError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(RpcError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(RpcError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RpcError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(RpcError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(RpcError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(RpcError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ModelLoadFailed(InvalidArgument):
    """A model that cannot be loaded: its config, its files or its initialize() failed. The
    message names the model and says why; the other models keep serving."""


class InstanceBroken(Unavailable):
    """A model instance whose process died and could not be started again; the request never
    reached it."""


_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {
    cls.code: cls for cls in RpcError.__subclasses__()
}


def from_status(code: grpc.StatusCode, message: str) -> RpcError:
    """Turn a received status back into the error class the server raised."""
    return _BY_CODE.get(code, Unknown)(message)


def internal_error(exc: BaseException, where: str) -> Unknown:
    """Log an unexpected exception once, with its traceback, and return what the client sees.

    The client gets only the error id; the text of ``exc`` may hold data it must not see.
    """
    error_id = uuid.uuid4().hex[:12]
    log.error(
        "internal error (id=%s) in %s",
        error_id,
        where,
        exc_info=exc,
        extra={"error_id": error_id, "where": where},
    )
    return Unknown(f"internal error (id={error_id})")
