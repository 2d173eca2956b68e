"""simple_string_dyna_sequence: a per-sequence accumulator keyed by the string CORRID.

START sets the accumulator to INPUT, every later request adds INPUT, and the END request also
adds the correlation ID read as a decimal integer; OUTPUT is the accumulator. The sequence
batcher pins a sequence to one instance, so each instance keeps the sequences it was given.
"""

from __future__ import annotations

import numpy as np

from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor


class Model:
    def initialize(self, args: dict[str, str]) -> None:
        self.accumulators: dict[bytes, int] = {}

    async def execute(self, requests: list[Request]) -> list[Response]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Response:
        value = int(request.input("INPUT").as_numpy().reshape(-1)[0])
        start = bool(request.input("START").as_numpy().reshape(-1)[0])
        end = bool(request.input("END").as_numpy().reshape(-1)[0])
        ready = bool(request.input("READY").as_numpy().reshape(-1)[0])
        corrid = request.input("CORRID").as_numpy().reshape(-1)[0]
        if not ready:
            return Response([Tensor("OUTPUT", np.zeros((1, 1), np.int32))])
        total = value if start else self.accumulators.get(corrid, 0) + value
        if end:
            try:
                total += int(corrid.decode())
            except ValueError:
                return Response(
                    error=ModelError(f"correlation ID {corrid!r} is not a decimal integer")
                )
            self.accumulators.pop(corrid, None)
        else:
            self.accumulators[corrid] = total
        return Response([Tensor("OUTPUT", np.array([[_int32(total)]], np.int32))])


def _int32(value: int) -> int:
    """``value`` wrapped to int32 as a C cast would: any correlation ID the config accepts
    (a string of any length) gives an OUTPUT."""
    return (value + 2**31) % 2**32 - 2**31
