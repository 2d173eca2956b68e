"""preprocess: FEATURES = (IMAGE / 255 - 0.5) / 0.25, element-wise, as float32."""

from __future__ import annotations

import numpy as np

from asyncinfer.inference.python_model import Request, Response, Tensor


class Model:
    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            image = request.input("IMAGE").as_numpy().astype(np.float32)
            features = (image / np.float32(255.0) - np.float32(0.5)) / np.float32(0.25)
            responses.append(Response([Tensor("FEATURES", features)]))
        return responses
