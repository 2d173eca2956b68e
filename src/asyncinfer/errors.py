"""The exception tree of asyncinfer and the only mapping between it and gRPC status codes.

::

    AsyncInferError
    ├── RpcError                  client-visible; each subclass is exactly one status code
    │   ├── Cancelled             CANCELLED
    │   ├── Unknown               UNKNOWN (unexpected server errors, with an error id)
    │   ├── InvalidArgument       INVALID_ARGUMENT
    │   │   ├── ModelLoadFailed   a model that cannot be loaded (config, files, initialize)
    │   │   └── StringCountError  a BYTES input with the wrong number of elements
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
back into the same class with :func:`from_status`. Over HTTP, each class answers with
``http_status``: Triton's HTTP status for the statuses Triton has (INTERNAL 500, NOT_FOUND 404,
UNAVAILABLE 503, UNIMPLEMENTED 501, the rest 400), and HTTP's own for those it has not
(DEADLINE_EXCEEDED 504, RESOURCE_EXHAUSTED 429, PERMISSION_DENIED 403, UNAUTHENTICATED 401).

Every message that repeats a string a client sent (a model, region, key or tensor name) passes
it through :func:`echo`, which bounds its length and escapes what is not printable; the whole
message is bounded once more where it is sent (:func:`bounded_message`). An unexpected error is
logged with its traceback once per distinct cause (exception type, RPC and the line that raised)
within :data:`INTERNAL_LOG_WINDOW` seconds; the calls it fails meanwhile share its error id and
are counted in the next log line of that cause, so a flood of one bug cannot flood the log.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
import traceback
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
    "StringCountError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "UsageError",
    "bounded_message",
    "echo",
    "from_http_reply",
    "from_http_status",
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
    #: The HTTP status the HTTP front end answers with.
    http_status: ClassVar[int] = 400

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
    http_status = 504


class NotFound(RpcError):
    code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class AlreadyExists(RpcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403


class ResourceExhausted(RpcError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class FailedPrecondition(RpcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(RpcError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501


class Internal(RpcError):
    code = grpc.StatusCode.INTERNAL
    http_status = 500


class Unavailable(RpcError):
    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class DataLoss(RpcError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(RpcError):
    code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class ModelLoadFailed(InvalidArgument):
    """A model that cannot be loaded: its config, its files or its initialize() failed. The
    message names the model and says why; the other models keep serving."""


class StringCountError(InvalidArgument):
    """A BYTES input whose payload holds more or fewer elements than its shape says. The data
    plane checks every input before it reports one, and reports the last (as Triton does)."""


class InstanceBroken(Unavailable):
    """A model instance whose process died and could not be started again; the request never
    reached it."""


_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {
    cls.code: cls for cls in RpcError.__subclasses__()
}


def from_status(code: grpc.StatusCode, message: str) -> RpcError:
    """Turn a received status back into the error class the server raised."""
    return _BY_CODE.get(code, Unknown)(message)


#: HTTP statuses the HTTP front end answers, back to their classes (400: InvalidArgument, the
#: class most 400s are; 408 and 413: the body-read errors' DeadlineExceeded, ResourceExhausted).
_BY_HTTP_STATUS: dict[int, type[RpcError]] = {
    **{cls.http_status: cls for cls in RpcError.__subclasses__() if cls.http_status != 400},
    400: InvalidArgument,
    408: DeadlineExceeded,
    413: ResourceExhausted,
}


def from_http_status(status: int, message: str) -> RpcError:
    """Turn an HTTP error reply back into the error class its status stands for."""
    return _BY_HTTP_STATUS.get(status, Unknown)(message)


def from_http_reply(status: int, body: bytes) -> RpcError:
    """:func:`from_http_status` for a reply's body: its ``{"error": ...}`` text, or the first
    500 bytes of a body that is not that JSON (a proxy's page, say)."""
    try:
        text = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        text = body[:500].decode(errors="replace")
    return from_http_status(status, str(text))


#: At most this many characters of one client string appear in a message.
ECHO_LIMIT = 128
#: At most this many characters of a status message are sent (grpc sends it in a header).
MESSAGE_LIMIT = 2048
#: Seconds during which further errors of one cause are counted instead of logged.
INTERNAL_LOG_WINDOW = 60.0
_MAX_CAUSES = 1024


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``value`` as text fit to repeat in an error: non-printable characters escaped, and at
    most ``limit`` characters of it, with the full length said when it was cut."""
    text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    if not head.isprintable():
        head = head.encode("unicode_escape").decode("ascii")
    return head if len(text) <= limit else f"{head}...({len(text)} characters)"


def bounded_message(message: str) -> str:
    """``message`` cut to :data:`MESSAGE_LIMIT` characters."""
    if len(message) <= MESSAGE_LIMIT:
        return message
    tail = f"...({len(message)} characters)"
    return message[: MESSAGE_LIMIT - len(tail)] + tail


@dataclasses.dataclass(slots=True)
class _Cause:
    error_id: str
    logged_at: float
    repeated: int = 0  # calls failed by this cause since it was logged


class _InternalLog:
    """Logs a traceback once per cause per window; the calls in between reuse its error id."""

    def __init__(self) -> None:
        self.causes: collections.OrderedDict[tuple[str, str, str], _Cause] = (
            collections.OrderedDict()
        )

    def error_id(self, exc: BaseException, where: str) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        origin = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        key = (type(exc).__qualname__, where, origin)
        now = time.monotonic()
        cause = self.causes.get(key)
        if cause is not None and now - cause.logged_at < INTERNAL_LOG_WINDOW:
            cause.repeated += 1
            return cause.error_id
        error_id = uuid.uuid4().hex[:12]
        repeated = 0 if cause is None else cause.repeated
        more = f"; {repeated} more like it since the last report" if repeated else ""
        log.error(
            "internal error (id=%s) in %s%s",
            error_id,
            where,
            more,
            exc_info=exc,
            extra={"error_id": error_id, "where": where, "repeated": repeated},
        )
        self.causes[key] = _Cause(error_id, now)
        self.causes.move_to_end(key)
        while len(self.causes) > _MAX_CAUSES:
            self.causes.popitem(last=False)
        return error_id


_INTERNAL_LOG = _InternalLog()


def internal_error(exc: BaseException, where: str) -> Unknown:
    """Log an unexpected exception (once per cause and window, with its traceback) and return
    what the client sees.

    The client gets only the error id; the text of ``exc`` may hold data it must not see.
    """
    return Unknown(f"internal error (id={_INTERNAL_LOG.error_id(exc, where)})")
