"""The spans of inference requests: a front end's request span, and the child span of an
ensemble step or an in-process (BLS) call, each with the queue and compute phases of the
request's RequestTiming as its children (asyncinfer.tracing makes and exports them).

    with traced_request(resources.tracing, model, request, headers):    # a front end
        response = await model.infer(request)

    with ChildCall("ensemble step preprocess", model, call):             # inside a traced call
        outputs = await model.infer(call)

Neither makes a span unless tracing samples the request (or its parent is traced).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from ..tracing import ActiveSpan, Tracing, child
from .infer_types import InferRequest
from .model import LoadedModel

__all__ = ["ChildCall", "traced_request"]


@contextlib.contextmanager
def traced_request(
    tracing: Tracing, model: LoadedModel, request: InferRequest, headers: Mapping[str, str]
) -> Iterator[ActiveSpan | None]:
    """The block runs ``request`` under its InferRequest span when the model's trace settings
    sample it (the caller's ``traceparent`` in ``headers`` is its parent)."""
    active = tracing.start_request(
        model.name, str(model.version), headers, request_id=request.id, inputs=request.inputs
    )
    if active is None:
        yield None
        return
    try:
        yield active
    except BaseException as exc:
        active.finish(exc, request.timing)
        raise
    active.finish(None, request.timing)


class ChildCall:
    """A ``with`` block around one call of ``model`` made inside a traced call: a child span
    named ``name`` with the request's phases; nothing at all outside a traced call."""

    __slots__ = ("_active", "_model", "_name", "_request")

    def __init__(self, name: str, model: LoadedModel, request: InferRequest) -> None:
        self._name = name
        self._model = model
        self._request = request
        self._active: ActiveSpan | None = None

    def __enter__(self) -> ActiveSpan | None:
        model = self._model
        self._active = child(
            self._name,
            {"triton.model_name": model.name, "triton.model_version": str(model.version)},
        )
        return self._active

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if self._active is not None:
            self._active.finish(error, self._request.timing)
