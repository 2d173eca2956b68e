"""bls_add_sub: SUM = INPUT0 + INPUT1 and ABS_DIFF = |INPUT0 - INPUT1|, computed by calling the
`simple` model in process: once, and a second time with the inputs swapped only when some
difference came out negative (a condition on an intermediate result).

``args["models"]`` is the server's ModelCaller; its errors are RpcErrors with the called
model's message, turned here into this request's ModelError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asyncinfer.errors import RpcError
from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor

CALLEE = "simple"


class Model:
    def initialize(self, args: dict[str, Any]) -> None:
        self.models = args["models"]

    async def execute(self, requests: list[Request]) -> list[Response]:
        return [await self._one(request) for request in requests]

    async def _one(self, request: Request) -> Response:
        a = request.input("INPUT0").as_numpy()
        b = request.input("INPUT1").as_numpy()
        try:
            first = await self.models.infer(CALLEE, {"INPUT0": a, "INPUT1": b})
            difference = first["OUTPUT1"]
            if (difference < 0).any():
                swapped = await self.models.infer(CALLEE, {"INPUT0": b, "INPUT1": a})
                difference = np.where(difference < 0, swapped["OUTPUT1"], difference)
        except RpcError as exc:
            return Response(error=ModelError(f"calling '{CALLEE}' failed: {exc.message}"))
        return Response([Tensor("SUM", first["OUTPUT0"]), Tensor("ABS_DIFF", difference)])
