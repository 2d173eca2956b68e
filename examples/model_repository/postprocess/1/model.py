"""postprocess: PROBABILITIES = softmax(SCORES); LABEL = the label of the most probable class."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from asyncinfer.inference.python_model import Request, Response, Tensor

LABELS = pathlib.Path(__file__).with_name("labels.txt")


class Model:
    def initialize(self, args: dict[str, Any]) -> None:
        self.labels = np.array(
            [line.encode() for line in LABELS.read_text().splitlines()], dtype=np.object_
        )

    async def execute(self, requests: list[Request]) -> list[Response]:
        responses = []
        for request in requests:
            scores = request.input("SCORES").as_numpy()
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            probabilities = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
            label = self.labels[probabilities.argmax(axis=1)].reshape(-1, 1)
            responses.append(
                Response([Tensor("LABEL", label), Tensor("PROBABILITIES", probabilities)])
            )
        return responses
