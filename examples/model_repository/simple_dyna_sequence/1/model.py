"""simple_dyna_sequence: OUTPUT = (INPUT + START + END * CORRID) * READY; no state is kept."""

from __future__ import annotations

import numpy as np

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            value = request.input("INPUT").as_numpy()
            start = request.input("START").as_numpy()
            end = request.input("END").as_numpy()
            ready = request.input("READY").as_numpy()
            # CORRID is uint64; the output is int32, so it wraps like a C cast would.
            corrid = request.input("CORRID").as_numpy().astype(np.int64).astype(np.int32)
            output = (value + start + end * corrid) * ready
            responses.append(Response([Tensor("OUTPUT", output.astype(np.int32))]))
        return responses
