"""simple_identity: OUTPUT0 is INPUT0, byte for byte (NUL and non-UTF-8 bytes included)."""

from __future__ import annotations

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        return [
            Response([Tensor("OUTPUT0", request.input("INPUT0").as_numpy())])
            for request in requests
        ]
