"""repeat_int32 (decoupled): one response per element of IN, then the final flag.

For each element i of IN, in order, wait DELAY[i] ms and send OUT=[IN[i]], IDX=[i]; then wait
WAIT ms and release the request with the final flag. Only the requested outputs are sent.
"""

from __future__ import annotations

import asyncio

import numpy as np

from asyncinfer.inference.python_model import ModelError, Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> None:
        # Requests of one call run side by side: each has its own sender.
        await asyncio.gather(*(self._repeat(request) for request in requests))

    async def _repeat(self, request: Request) -> None:
        sender = request.response_sender()
        values = request.input("IN").as_numpy().reshape(-1)
        delays = request.input("DELAY").as_numpy().reshape(-1)
        wait = request.input("WAIT").as_numpy().reshape(-1)
        if len(delays) != len(values) or len(wait) != 1:
            message = (
                f"DELAY must have one element per element of IN ({len(values)}), got "
                f"{len(delays)}; WAIT must have exactly one, got {len(wait)}"
            )
            sender.send(Response(error=ModelError(message)), final=True)
            return
        wanted = set(request.requested_output_names)
        for index, (value, delay) in enumerate(zip(values, delays, strict=True)):
            await asyncio.sleep(int(delay) / 1000)
            tensors = {
                "OUT": Tensor("OUT", np.array([value], np.int32)),
                "IDX": Tensor("IDX", np.array([index], np.uint32)),
            }
            sender.send(Response([t for name, t in tensors.items() if name in wanted]))
        await asyncio.sleep(int(wait[0]) / 1000)
        sender.send(final=True)
