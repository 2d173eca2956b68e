"""simple: OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1, element-wise int32."""

from __future__ import annotations

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    # async: a 16-element add is cheaper than a hop to a worker thread.
    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            a = request.input("INPUT0").as_numpy()
            b = request.input("INPUT1").as_numpy()
            responses.append(Response([Tensor("OUTPUT0", a + b), Tensor("OUTPUT1", a - b)]))
        return responses
