"""BYTES tensors as ONNX Runtime string tensors, and string outputs back as BYTES, byte-exact.

A BYTES tensor is an object array of ``bytes``; ONNX Runtime's Python API takes and returns
string tensors as ``str`` objects, which it keeps as their UTF-8 encoding. Handing it ``bytes``
would make it store each element's repr (``b'123'``), so every element is turned into the
``str`` whose UTF-8 encoding the graph should see, and every output ``str`` back into bytes:

- When every BYTES element of a call is valid UTF-8 (text, NUL bytes included: the usual
  case), each is decoded as UTF-8: the graph sees exactly the bytes the client sent, and its
  string outputs come back as exactly the bytes the graph holds.
- When some element is not UTF-8 (binary data), ONNX Runtime's Python API cannot carry it
  either way (it refuses lone surrogates going in and undecodable strings coming out), so the
  whole call maps one byte to one character (latin-1) in both directions: every byte value
  comes back as it went in through any graph that moves strings around (identity, gather,
  concat...), while the graph sees each byte >= 0x80 as a two-byte UTF-8 character. An output
  character above U+00FF (text the graph made itself) is sent as UTF-8.

The conversions are one C-level call per element; ONNX Runtime itself makes a Python object per
element on the way in and on the way out, so this is the floor its Python API allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy.typing as npt

from ..datatypes import object_array
from ..errors import InvalidArgument

__all__ = ["StringCall", "strings_in"]

Array = npt.NDArray[Any]


class StringCall:
    """How one call's BYTES tensors were handed to ONNX Runtime, to turn its outputs back."""

    __slots__ = ("latin1",)

    def __init__(self, latin1: bool) -> None:
        #: The call carried bytes that are not UTF-8: one character per byte both ways.
        self.latin1 = latin1

    def strings_out(self, outputs: Mapping[str, Array], names: Iterable[str]) -> dict[str, Array]:
        """``outputs`` with each of the string outputs ``names`` as an object array of bytes."""
        converted = dict(outputs)
        for name in names:
            array = converted.get(name)
            if array is not None:
                converted[name] = _refill(array, self._encode(array.reshape(-1).tolist()))
        return converted

    def _encode(self, items: list[Any]) -> list[bytes]:
        if not self.latin1:
            return [item.encode() for item in items]
        try:
            return [item.encode("latin-1") for item in items]
        except UnicodeEncodeError:  # a character the graph made: UTF-8, as the graph holds it
            return [_latin1_or_utf8(item) for item in items]


def strings_in(
    arrays: Mapping[str, Array], names: Iterable[str]
) -> tuple[dict[str, Array], StringCall]:
    """``arrays`` with each BYTES input ``names`` as the object array of ``str`` ONNX Runtime
    wants, and how they were mapped (for the outputs)."""
    present = [name for name in names if name in arrays]
    flat = {name: arrays[name].reshape(-1).tolist() for name in present}
    latin1 = False
    try:
        texts = {name: _decode(items, "utf-8") for name, items in flat.items()}
    except UnicodeDecodeError:
        latin1 = True
        texts = {name: _decode(items, "latin-1") for name, items in flat.items()}
    converted = dict(arrays)
    for name, items in texts.items():
        converted[name] = _refill(arrays[name], items)
    return converted, StringCall(latin1)


def _decode(items: list[Any], encoding: str) -> list[str]:
    try:
        return [item.decode(encoding) for item in items]
    except AttributeError:  # in process, str elements may come as they are
        return [_as_text(item, encoding) for item in items]


def _as_text(item: object, encoding: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item).decode(encoding)
    raise InvalidArgument(
        f"a BYTES element is {type(item).__name__}; BYTES tensors hold bytes (or str)"
    )


def _latin1_or_utf8(item: str) -> bytes:
    try:
        return item.encode("latin-1")
    except UnicodeEncodeError:
        return item.encode()


def _refill(like: Array, items: list[Any]) -> Array:
    return object_array(items).reshape(like.shape)
