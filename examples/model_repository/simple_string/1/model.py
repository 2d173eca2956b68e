"""simple_string: BYTES inputs holding decimal integers; outputs their sum and difference as
decimal text in canonical form ("16", "-1", no padding, no leading zeros)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from asyncinfer.inference.python_model import (
    ModelError,
    ModelInputError,
    Request,
    Response,
    Tensor,
)


def _integers(array: npt.NDArray[Any], name: str) -> npt.NDArray[np.int64]:
    try:
        return np.array([int(item) for item in array.reshape(-1)], dtype=np.int64).reshape(
            array.shape
        )
    except (ValueError, OverflowError):  # not decimal text (UTF-8 included), or past int64
        raise ModelInputError(f"{name} must hold decimal integers that fit an int64") from None


def _text(values: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    out = np.empty(values.shape, dtype=np.object_)
    out.reshape(-1)[:] = [str(int(v)).encode() for v in values.reshape(-1)]
    return out


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            try:
                a = _integers(request.input("INPUT0").as_numpy(), "INPUT0")
                b = _integers(request.input("INPUT1").as_numpy(), "INPUT1")
            except ModelError as error:
                responses.append(Response(error=error))
                continue
            responses.append(
                Response([Tensor("OUTPUT0", _text(a + b)), Tensor("OUTPUT1", _text(a - b))])
            )
        return responses
