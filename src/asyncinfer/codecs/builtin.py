"""The built-in codecs (protobuf, FlatBuffers, raw), and a codec looked up by name, as the CLI's
``--codec`` gives it."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Codec
from .protobuf import ProtobufCodec
from .raw import RawCodec
from .tensor_message import FlatBuffersCodec

__all__ = ["FLATBUFFERS", "PROTOBUF", "RAW", "codec_named"]

PROTOBUF = ProtobufCodec()
FLATBUFFERS = FlatBuffersCodec()
RAW = RawCodec()

_BUILT_IN: dict[str, Codec] = {"protobuf": PROTOBUF, "flatbuffers": FLATBUFFERS, "raw": RAW}


def codec_named(name: str) -> Codec:
    """A built-in codec by name (protobuf, flatbuffers, raw) or ``MODULE:ATTRIBUTE``."""
    if name in _BUILT_IN:
        return _BUILT_IN[name]
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ConfigError(
            f"unknown codec {name!r}: give one of {sorted(_BUILT_IN)} or MODULE:ATTRIBUTE"
        )
    try:
        codec = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load codec {name}: {exc}") from exc
    if not isinstance(codec, Codec):
        raise ConfigError(f"{name} is {codec!r}, not an asyncinfer.codecs.Codec")
    return codec
