"""simple_sequence: OUTPUT = (INPUT + START) * READY for each request; no state is kept."""

from __future__ import annotations

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            value = request.input("INPUT").as_numpy()
            start = request.input("START").as_numpy()
            ready = request.input("READY").as_numpy()
            responses.append(Response([Tensor("OUTPUT", (value + start) * ready)]))
        return responses
