"""custom_identity_int32: OUTPUT0 is INPUT0, same dtype and shape.

The input is a read-only view over the received message and the output is framed straight
from it, so the tensor is copied once, into the reply.
"""

from __future__ import annotations

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        return [
            Response([Tensor("OUTPUT0", request.input("INPUT0").as_numpy())])
            for request in requests
        ]
