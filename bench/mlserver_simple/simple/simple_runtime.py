"""MLServer peer of the benchmark: Triton's `simple` model (INT32 add/sub) as an MLServer runtime.

Runs inside build/mlserver-venv (MLServer's own environment), never inside asyncinfer's.
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SimpleModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        a, b = inputs["INPUT0"], inputs["INPUT1"]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("OUTPUT0", a + b),
                NumpyCodec.encode_output("OUTPUT1", a - b),
            ],
        )
