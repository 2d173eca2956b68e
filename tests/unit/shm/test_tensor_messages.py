"""Tensor messages: inline and shared-memory contents, hand-framed replies, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.errors import InvalidArgument
from asyncinfer.pb.tensor_pb2 import Tensor
from asyncinfer.shm import SysvAttachments, SysvRing
from asyncinfer.shm.tensors import (
    framed_tensor_message,
    inline_tensor,
    read_tensor,
    shm_ref,
    shm_tensor,
    write_tensor,
)
from tests.protos import preprocess_pb2


@given(
    shape=st.lists(st.integers(0, 5), max_size=4),
    dtype=st.sampled_from(["f4", "f8", "i1", "u2", "i8", "?", "f2"]),
)
def test_framed_reply_matches_protobuf(shape: list[int], dtype: str) -> None:
    array = np.zeros(shape, dtype)
    framed = framed_tensor_message(1, array)
    assert framed == preprocess_pb2.InferReply(output=inline_tensor(array)).SerializeToString()
    with read_tensor(preprocess_pb2.InferReply.FromString(framed).output, None) as view:
        np.testing.assert_array_equal(view, array)


def test_inline_and_shm_read_the_same() -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    cache = SysvAttachments()
    with SysvRing(4096, 1) as ring, ring.allocate_nowait(data.nbytes) as slot:
        for message in (inline_tensor(data), shm_tensor(slot.write(data), data.dtype, data.shape)):
            with read_tensor(message, cache) as view:
                np.testing.assert_array_equal(view, data)
        with ring.allocate_nowait(data.nbytes) as out:
            reply = write_tensor(data * 2, shm_ref(out.descriptor), cache)
            assert reply.WhichOneof("contents") == "shm"
            np.testing.assert_array_equal(out.array(np.float32, (2, 3, 4)), data * 2)
    cache.close()


def test_bad_tensors() -> None:
    with (
        pytest.raises(InvalidArgument, match="datatype 'FP8' is not supported"),
        read_tensor(Tensor(datatype="FP8"), None),
    ):
        pass
    with (
        pytest.raises(InvalidArgument, match=r"3 raw bytes do not match FP32\[1\]"),
        read_tensor(Tensor(datatype="FP32", shape=[1], raw=b"abc"), None),
    ):
        pass
    with (
        pytest.raises(InvalidArgument, match="negative dimension"),
        read_tensor(Tensor(datatype="FP32", shape=[-1]), None),
    ):
        pass
    request = preprocess_pb2.InferRequest(input=Tensor(datatype="FP32", shape=[1]))
    request.input.shm.byte_size = 4
    with (
        pytest.raises(InvalidArgument, match="does not accept shared memory"),
        read_tensor(request.input, None),
    ):
        pass
