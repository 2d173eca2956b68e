"""A Triton ``TritonPythonModel`` as an asyncinfer python model: the adapter both instance kinds
(thread_instances.py, _instance_process.py) run exactly like a ``Model`` class.

``adapt(TritonPythonModel)`` is a class with asyncinfer's Model shape: ``initialize(args)``
gives the Triton model Triton's args (``model_config`` as Triton's JSON, ``model_instance_kind``
and the rest) and binds its BLS calls; ``execute(requests)`` hands it pb_utils
InferenceRequests over the same arrays (no copy) and turns its InferenceResponses back into
Responses, checking what it returned as Triton does; ``finalize()`` is its finalize. A
``def execute`` stays a plain one (run in a thread, or on the loop while quick) and an
``async def execute`` a loop-run one.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import json_format

from ....errors import Internal
from ....pb.inference.model_config_pb2 import ModelConfig
from ... import python_model
from .._bls_pipe import PipeCaller
from .pb_requests import (
    CURRENT,
    Bls,
    InferenceRequest,
    InferenceResponse,
    clear_fallback,
    set_fallback,
)
from .pb_types import TritonModelException

__all__ = ["TRITON_CLASS", "adapt", "triton_config_dict"]

TRITON_CLASS = "TritonPythonModel"
_NO_CALLER = "this server handed the model no in-process model caller"
_INT64 = (
    pb_descriptor.FieldDescriptor.TYPE_INT64,
    pb_descriptor.FieldDescriptor.TYPE_UINT64,
    pb_descriptor.FieldDescriptor.TYPE_SINT64,
)


def triton_config_dict(config: ModelConfig) -> dict[str, Any]:
    """A config as Triton gives it to python models: field names as in config.pbtxt, every
    field printed, 64-bit integers as numbers."""
    as_dict = json_format.MessageToDict(
        config, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _numbers(as_dict, config.DESCRIPTOR)
    return as_dict


def _numbers(values: dict[str, Any], message: Any) -> None:  # a protobuf Descriptor
    for field in message.fields:
        if field.name not in values:
            continue
        value = values[field.name]
        if field.type in _INT64:
            values[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                inner = field.message_type.fields_by_name["value"]
                if inner.message_type is not None:
                    for item in value.values():
                        _numbers(item, inner.message_type)
            else:
                for item in value if isinstance(value, list) else [value]:
                    _numbers(item, field.message_type)


def _triton_args(args: Mapping[str, Any]) -> dict[str, str]:
    """Triton's initialize() args from asyncinfer's."""
    config = json_format.Parse(args["model_config"], ModelConfig())
    name = args["model_name"]
    return {
        "model_config": json.dumps(triton_config_dict(config)),
        "model_instance_kind": "CPU",
        "model_instance_name": str(args.get("model_instance_name", f"{name}_0")),
        "model_instance_device_id": "0",
        "model_repository": str(pathlib.Path(args["model_repository"]) / name),
        "model_version": str(args["model_version"]),
        "model_name": name,
    }


class _Adapter:
    """What both execute kinds share: the Triton model object, its args and its checks."""

    triton_class: type

    def __init__(self) -> None:
        self._model = self.triton_class()
        self._name = ""
        self._instance = ""
        self._decoupled = False
        self._bls = Bls(None, None, "the model is not initialized")

    async def initialize(self, args: Mapping[str, Any]) -> None:
        triton_args = _triton_args(args)
        self._name = triton_args["model_name"]
        self._instance = triton_args["model_instance_name"]
        config = json.loads(triton_args["model_config"])
        self._decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled"))
        caller = args.get("models")
        loop = asyncio.get_running_loop()
        if isinstance(caller, PipeCaller):  # a process instance: calls go through its pipe
            self._bls = Bls(None, loop, pipe=caller)
        else:
            self._bls = Bls(caller, loop, "" if caller else _NO_CALLER)
        set_fallback(self._bls)
        hook = getattr(self._model, "initialize", None)
        if hook is None:
            return
        token = CURRENT.set(self._bls)
        try:
            if inspect.iscoroutinefunction(hook):
                await hook(triton_args)
            else:
                await asyncio.to_thread(hook, triton_args)
        finally:
            CURRENT.reset(token)

    def finalize(self) -> None:
        clear_fallback(self._bls)
        hook = getattr(self._model, "finalize", None)
        if hook is not None:
            hook()

    def _requests(self, requests: list[python_model.Request]) -> list[InferenceRequest]:
        return [InferenceRequest.of_model(request, self._name) for request in requests]

    def _responses(
        self, returned: Any, requests: list[python_model.Request]
    ) -> list[python_model.Response] | None:
        """Triton's checks of what execute returned; a wrong return fails every request."""
        if self._decoupled:
            if returned is not None and any(item is not None for item in returned):
                raise Internal(
                    f"decoupled model '{self._name}' execute() must return None and send its "
                    "responses through request.get_response_sender()"
                )
            return None
        if not isinstance(returned, list | tuple):
            return self._all_failed("Expected a list in the execute return", requests)
        if len(returned) != len(requests):
            return self._all_failed(
                "Number of InferenceResponse objects do not match the number of "
                f"InferenceRequest objects. InferenceRequest(s) size is:{len(requests)}, and "
                f"InferenceResponse(s) size is:{len(returned)}",
                requests,
            )
        responses = []
        for index, response in enumerate(returned):
            if not isinstance(response, InferenceResponse):
                return self._all_failed(
                    f"execute() returned {type(response).__name__} at position {index} where "
                    "a pb_utils.InferenceResponse was expected",
                    requests,
                )
            responses.append(response.to_model())
        return responses

    def _raised(
        self, exc: Exception, requests: list[python_model.Request]
    ) -> list[python_model.Response] | None:
        # Triton's text: a TritonModelException's message as it is, others with their type.
        message = (
            exc.message()
            if isinstance(exc, TritonModelException)
            else f"{type(exc).__name__}: {exc}"
        )
        text = f"Failed to process the request(s) for model '{self._instance}', message: {message}"
        if self._decoupled:
            raise Internal(text)
        return self._all_failed(text, requests)

    def _all_failed(
        self, message: str, requests: list[python_model.Request]
    ) -> list[python_model.Response]:
        error = python_model.ModelError(message)
        return [python_model.Response(error=error) for _ in requests]


class _ThreadExecute(_Adapter):
    """A ``def execute``: runs in its instance's thread, where BLS ``exec()`` may block, or on
    the loop while it is quick and cannot block (thread_instances.py, _inline.py)."""

    def execute(self, requests: list[python_model.Request]) -> list[python_model.Response] | None:
        token = CURRENT.set(self._bls)
        try:
            returned = self._model.execute(self._requests(requests))
        except Exception as exc:
            return self._raised(exc, requests)
        finally:
            CURRENT.reset(token)
        return self._responses(returned, requests)


class _LoopExecute(_Adapter):
    """An ``async def execute``: runs on the loop; BLS goes through ``await async_exec()``."""

    async def execute(
        self, requests: list[python_model.Request]
    ) -> list[python_model.Response] | None:
        token = CURRENT.set(self._bls)
        try:
            returned = await self._model.execute(self._requests(requests))
        except Exception as exc:
            return self._raised(exc, requests)
        finally:
            CURRENT.reset(token)
        return self._responses(returned, requests)


def adapt(triton_class: type) -> type:
    """A Model class (asyncinfer's API) that runs ``triton_class``."""
    execute = getattr(triton_class, "execute", None)
    base = _LoopExecute if inspect.iscoroutinefunction(execute) else _ThreadExecute
    return type(triton_class.__name__, (base,), {"triton_class": triton_class})
