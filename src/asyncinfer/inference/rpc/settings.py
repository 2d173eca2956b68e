"""The settings RPCs: TraceSetting and LogSettings, over the server's one settings state
(server_settings.py), which the HTTP front end shares."""

from __future__ import annotations

from ...context import UnaryContext, rpc_method
from ...pb.inference import grpc_service_pb2 as pb
from ..control_calls import trace_settings
from ..server_settings import LogValue
from ..service import InferenceResources
from .control import SERVICE

__all__ = ["SETTINGS_CONTEXTS", "LogSettingsRpc", "TraceSettingRpc"]


class TraceSettingRpc(
    UnaryContext[pb.TraceSettingRequest, pb.TraceSettingResponse, InferenceResources]
):
    """Reads (no settings given) or changes the trace settings of the server or one model."""

    method = rpc_method(pb, SERVICE, "TraceSetting")

    async def execute(self, request: pb.TraceSettingRequest) -> pb.TraceSettingResponse:
        changes = {key: list(setting.value) for key, setting in request.settings.items()}
        settings = trace_settings(self.resources, request.model_name, changes)
        reply = pb.TraceSettingResponse()
        for key, values in settings.items():
            reply.settings[key].value.extend(values)
        return reply


class LogSettingsRpc(
    UnaryContext[pb.LogSettingsRequest, pb.LogSettingsResponse, InferenceResources]
):
    """Reads (no settings given) or changes the server's log settings."""

    method = rpc_method(pb, SERVICE, "LogSettings")

    async def execute(self, request: pb.LogSettingsRequest) -> pb.LogSettingsResponse:
        changes: dict[str, LogValue] = {}
        for key, setting in request.settings.items():
            choice = setting.WhichOneof("parameter_choice")
            if choice is not None:  # a setting without a value changes nothing
                changes[key] = getattr(setting, choice)
        reply = pb.LogSettingsResponse()
        for key, value in self.resources.log_settings.update(changes).items():
            target = reply.settings[key]
            if isinstance(value, bool):
                target.bool_param = value
            elif isinstance(value, int):
                target.uint32_param = value
            else:
                target.string_param = value
        return reply


SETTINGS_CONTEXTS = (TraceSettingRpc, LogSettingsRpc)
