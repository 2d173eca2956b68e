"""The FlatBuffers tensor message: round trips, zero copy, alignment, and agreement with the
code flatc generates from the schema, with the flatbuffers runtime's Builder and with flatc."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import flatbuffers
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncinfer import codecs
from asyncinfer.codecs._tensor_layout import TENSOR_FIELDS
from asyncinfer.codecs._tensor_read import read_tensors
from asyncinfer.codecs._tensor_write import write_tensors
from asyncinfer.errors import UsageError
from asyncinfer.fb import Tensor, TensorMessage

from ...codec_services import Blob

FLAT = codecs.FLATBUFFERS.bind(Blob.DESCRIPTOR)
SCHEMA = Path(__file__).parents[3] / "schemas" / "asyncinfer" / "fb" / "tensor.fbs"
DTYPES = ["?", "u1", "<u2", "<u4", "<u8", "i1", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8"]


def payload(tensors: dict[str, Any]) -> bytes:
    return b"".join(write_tensors(tensors))


arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
    )
)
tensor_maps = st.dictionaries(st.text(min_size=1, max_size=12), arrays, max_size=4)


@settings(max_examples=150, deadline=None)
@given(tensor_maps)
def test_round_trip_through_the_message(tensors: dict[str, np.ndarray]) -> None:
    message = FLAT.encode(tensors)
    got = FLAT.decode(message)
    assert list(got) == list(tensors)
    for name, array in tensors.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape
        np.testing.assert_array_equal(got[name], array)
        assert not got[name].flags.writeable
        if got[name].size:  # a view into the received message, not a copy
            assert np.shares_memory(got[name], np.frombuffer(message, np.uint8))


def test_data_starts_on_64_byte_boundaries_of_the_buffer() -> None:
    tensors = {"a": np.arange(3, dtype="<f4"), "bb": np.ones((5, 7), "<f8"), "c": np.int8(1)}
    buf = payload(tensors)
    for name, array in read_tensors(memoryview(buf)).items():
        offset = array.__array_interface__["data"][0] - np.frombuffer(buf, np.uint8).ctypes.data
        assert offset % 64 == 0, name


def test_bfloat16_and_non_native_inputs() -> None:
    bf16 = np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16)
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    strided = np.arange(20, dtype="<f4")[::2]
    got = FLAT.decode(FLAT.encode({"bf16": bf16, "be": big_endian, "strided": strided}))
    assert got["bf16"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got["bf16"], bf16)
    assert got["be"].dtype == np.dtype("<i4")
    np.testing.assert_array_equal(got["be"], big_endian)
    np.testing.assert_array_equal(got["strided"], strided)


def test_building_a_reply_writes_the_data_once() -> None:
    data = np.arange(1 << 16, dtype="<f4")
    pieces = write_tensors({"x": data})
    # The data goes into the message as the array's own memory: the join is its only write.
    assert any(isinstance(p, np.ndarray) and np.shares_memory(p, data) for p in pieces)


def test_values_that_cannot_be_encoded_say_why() -> None:
    with pytest.raises(UsageError, match=r"tensor 's' has dtype <U1; .* not strings or objects"):
        FLAT.encode({"s": np.array(["a"])})
    with pytest.raises(UsageError, match="mapping of name -> array, not list"):
        FLAT.encode([np.zeros(3)])
    with pytest.raises(UsageError, match="names must not be empty"):
        FLAT.encode({"": np.zeros(3)})


def test_json_requests_follow_the_schema() -> None:
    value = FLAT.from_json(
        {"tensors": [{"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]}]}
    )
    np.testing.assert_array_equal(value["x"], np.array([[1, 2], [3, 4]], "<i4"))
    with pytest.raises(UsageError, match=r"tensors\[0\]: data does not fit shape \[3\]"):
        FLAT.from_json({"tensors": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1]}]})
    with pytest.raises(UsageError, match=r"tensors\[0\].datatype 'STRING' is not one of BOOL"):
        FLAT.from_json({"tensors": [{"name": "x", "datatype": "STRING", "shape": [], "data": 1}]})
    with pytest.raises(UsageError, match=r'a tensor message in JSON is \{"tensors"'):
        FLAT.from_json([1])


# Agreement with flatc's generated code and the flatbuffers runtime --------------------------


def test_flatc_generated_readers_read_our_buffers() -> None:
    tensors = {"a": np.arange(6, dtype="<f4").reshape(2, 3), "b": np.array([7, 8], "<i8")}
    message = TensorMessage.TensorMessage.GetRootAs(payload(tensors), 0)
    assert TensorMessage.TensorMessage.TensorMessageBufferHasIdentifier(payload(tensors), 0)
    assert message.TensorsLength() == 2
    for index, (name, array) in enumerate(tensors.items()):
        tensor = message.Tensors(index)
        assert tensor.Name().decode() == name
        assert tensor.Datatype().decode() == {"<f4": "FP32", "<i8": "INT64"}[array.dtype.str]
        assert tensor.ShapeAsNumpy().tolist() == list(array.shape)
        assert tensor.DataAsNumpy().tobytes() == array.tobytes()


def test_buffers_built_with_the_runtime_builder_are_read() -> None:
    """flatc's generated builder functions with flatbuffers.Builder, back to front."""
    array = np.arange(12, dtype="<i2").reshape(3, 4)
    builder = flatbuffers.Builder(256)
    name, datatype = builder.CreateString("m"), builder.CreateString("INT16")
    shape = builder.CreateNumpyVector(np.array(array.shape, "<i8"))
    data = builder.CreateNumpyVector(array.reshape(-1).view(np.uint8))
    Tensor.Start(builder)
    Tensor.AddName(builder, name)
    Tensor.AddDatatype(builder, datatype)
    Tensor.AddShape(builder, shape)
    Tensor.AddData(builder, data)
    tensor = Tensor.End(builder)
    TensorMessage.StartTensorsVector(builder, 1)
    builder.PrependUOffsetTRelative(tensor)
    tensors = builder.EndVector()
    TensorMessage.Start(builder)
    TensorMessage.AddTensors(builder, tensors)
    builder.Finish(TensorMessage.End(builder), file_identifier=b"AITM")
    got = read_tensors(memoryview(bytes(builder.Output())))
    np.testing.assert_array_equal(got["m"], array)


class _SlotRecorder:
    """Stands in for a Builder to see which slot each generated Add* function writes."""

    def __init__(self) -> None:
        self.slot = -1

    def PrependUOffsetTRelativeSlot(self, slot: int, value: int, default: int) -> None:
        self.slot = slot


def test_the_field_slots_we_use_are_the_schemas() -> None:
    for expected, field in enumerate(TENSOR_FIELDS):
        recorder = _SlotRecorder()
        getattr(Tensor, f"Add{field.capitalize()}")(recorder, 0)
        assert recorder.slot == expected, field
    recorder = _SlotRecorder()
    TensorMessage.AddTensors(recorder, 0)
    assert recorder.slot == 0


@pytest.mark.skipif(shutil.which("flatc") is None, reason="flatc is not on PATH")
def test_flatc_itself_reads_our_buffers(tmp_path: Path) -> None:
    tensors = {"x": np.array([[1.5, -2.0]], "<f4"), "flag": np.array([True, False])}
    (tmp_path / "msg.bin").write_bytes(payload(tensors))
    subprocess.run(
        ["flatc", "--json", "--strict-json", "--raw-binary", "-o", str(tmp_path), str(SCHEMA),
         "--", str(tmp_path / "msg.bin")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    decoded = json.loads((tmp_path / "msg.json").read_text())
    assert [t["name"] for t in decoded["tensors"]] == ["x", "flag"]
    assert decoded["tensors"][0]["datatype"] == "FP32"
    assert decoded["tensors"][0]["shape"] == [1, 2]
    assert bytes(decoded["tensors"][0]["data"]) == tensors["x"].tobytes()
    assert decoded["tensors"][1]["data"] == [1, 0]
