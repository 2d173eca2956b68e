"""Protobuf messages (model config, statistics) as the JSON Triton's HTTP clients read.

Triton's JSON uses the proto field names, prints scalar fields at their defaults (perf_analyzer
reads ``max_batch_size`` even when it is 0), writes 64-bit integers as JSON numbers (protobuf's
own JSON mapping writes them as strings), enums by name and bytes in base64.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["message_json"]

_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_ENUM = FieldDescriptor.TYPE_ENUM
_BYTES = FieldDescriptor.TYPE_BYTES


def message_json(message: Message) -> dict[str, Any]:
    """``message`` as a JSON-ready dict."""
    result: dict[str, Any] = {}
    field: Any
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            result[field.name] = {str(k): _value(value_field, v) for k, v in value.items()}
        elif _is_repeated(field):
            result[field.name] = [_value(field, item) for item in value]
        elif field.type == _MESSAGE:
            if message.HasField(field.name):
                result[field.name] = message_json(value)
        elif field.containing_oneof is not None:
            if message.HasField(field.name):
                result[field.name] = _value(field, value)
        else:
            result[field.name] = _value(field, value)
    return result


def _is_repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.29 spells it so
    if repeated is not None:
        return bool(repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _value(field: Any, value: Any) -> Any:
    if field.type == _MESSAGE:
        return message_json(value)
    if field.type == _ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == _BYTES:
        return base64.b64encode(value).decode()
    return value
