"""Codecs: how a Context's requests and replies are encoded on the wire.

::

    Codec                     a wire format, bound to each message type of an RPC
    ├── ProtobufCodec         PROTOBUF: the RPC's protobuf messages (the default)
    └── PayloadCodec          the payload of a message of one `bytes` field
        ├── FlatBuffersCodec  FLATBUFFERS: the tensor message (dict of numpy arrays)
        └── RawCodec          RAW: bytes the Context frames itself (memoryview in)

A Context picks one with a class attribute; the RPC stays declared by its method descriptor::

    class Classify(UnaryContext[codecs.Tensors, codecs.Tensors, MyResources]):
        method = rpc_method(my_pb2, "Classifier", "Classify")  # messages of one bytes field
        codec = codecs.FLATBUFFERS

Add a codec by subclassing PayloadCodec (its bytes ride in the one bytes field) or Codec.
"""

from .base import BoundCodec, BytesLike, Codec, bind_method
from .builtin import FLATBUFFERS, PROTOBUF, RAW, codec_named
from .payload import HEADER_BYTES, PayloadCodec
from .protobuf import ProtobufCodec
from .raw import RawCodec
from .tensor_message import FlatBuffersCodec, Tensors

__all__ = [
    "FLATBUFFERS",
    "HEADER_BYTES",
    "PROTOBUF",
    "RAW",
    "BoundCodec",
    "BytesLike",
    "Codec",
    "FlatBuffersCodec",
    "PayloadCodec",
    "ProtobufCodec",
    "RawCodec",
    "Tensors",
    "bind_method",
    "codec_named",
]
