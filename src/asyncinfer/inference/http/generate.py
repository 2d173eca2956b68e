"""Triton's generate extension: ``.../generate`` (one JSON response) and ``.../generate_stream``
(server-sent events, one per response: what decoupled models answer).

A generate request is a JSON object whose keys name the model's inputs (a value or an array of
them; a model that batches gets a batch of one) and ``parameters``; each response is a JSON
object with ``model_name``, ``model_version`` and one key per output (a single element as the
value itself). Both run through ``LoadedModel.stream``, the data plane's path for any number
of responses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ...errors import InvalidArgument, RpcError, echo, internal_error
from ..infer_types import ElementValues, InferInput, InferRequest, InferResponse
from ..model import LoadedModel
from .codec import json_elements

__all__ = ["generate", "generate_stream"]


def _request(model: LoadedModel, message: Mapping[str, Any]) -> InferRequest:
    sig = model.signature
    inputs = []
    parameters = message.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidArgument(
            f"generate request for model '{model.name}': 'parameters' must be an object"
        )
    for key, value in message.items():
        if key in ("parameters", "id"):
            continue
        spec = sig.inputs.get(key)
        if spec is None:
            raise InvalidArgument(
                f"generate request for model '{model.name}' has '{echo(key)}', which is not "
                f"an input of the model (inputs: {sorted(sig.inputs)})"
            )
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, list | dict) for v in values):
            raise InvalidArgument(
                f"generate request for model '{model.name}': input '{key}' takes a value or a "
                "flat array of values"
            )
        shape: tuple[int, ...] = (len(values),)
        if sig.max_batch_size > 0:
            shape = (1, *shape)
        inputs.append(InferInput(key, spec.datatype.wire, shape, ElementValues(values, key)))
    request_id = message.get("id", "")
    return InferRequest(inputs, (), parameters, request_id if isinstance(request_id, str) else "")


def _message(response: InferResponse) -> dict[str, Any]:
    message: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id:
        message["id"] = response.id
    for output in response.outputs:
        elements = json_elements(output.data, output.datatype)
        message[output.name] = elements[0] if len(elements) == 1 else elements
    return message


async def generate(model: LoadedModel, message: Mapping[str, Any]) -> dict[str, Any]:
    """The one response of a generate request."""
    answers: list[InferResponse] = []
    async with contextlib.aclosing(model.stream(_request(model, message))) as responses:
        async for response in responses:
            if response.error is not None:
                raise response.error
            if response.outputs:
                answers.append(response)
    if len(answers) != 1:
        raise InvalidArgument(
            f"model '{model.name}' answered {len(answers)} responses to a generate request, "
            "which returns exactly one; use generate_stream"
        )
    return _message(answers[0])


async def generate_stream(
    model: LoadedModel, message: Mapping[str, Any], request: web.Request
) -> web.StreamResponse:
    """Every response of a generate request as a server-sent event; a failure is an event
    ``{"error": ...}`` and ends the stream."""
    infer_request = _request(model, message)  # bad input answers with a status, not a stream
    reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await reply.prepare(request)
    async with contextlib.aclosing(model.stream(infer_request)) as responses:
        try:
            async for response in responses:
                if response.error is not None:
                    await _event(reply, {"error": response.error.message})
                    break
                if response.outputs:
                    await _event(reply, _message(response))
        except RpcError as exc:
            await _event(reply, {"error": exc.message})
        except Exception as exc:
            await _event(reply, {"error": internal_error(exc, request.path).message})
    await reply.write_eof()
    return reply


async def _event(reply: web.StreamResponse, value: dict[str, Any]) -> None:
    await reply.write(b"data: " + json.dumps(value, separators=(",", ":")).encode() + b"\n\n")
