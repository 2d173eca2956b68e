"""triton_bls_async: the BLS model as an ``async def execute``: for each request, two
``async_exec`` calls to triton_add_sub run at once (the inputs as given, and swapped); the
answer is the first call's OUTPUT0 and the second call's OUTPUT1 (INPUT1 - INPUT0)."""

# Annotations stay text: on tritonserver, pb_utils' classes exist only once the model runs.
from __future__ import annotations

import asyncio

import triton_python_backend_utils as pb_utils

CALLEE = "triton_add_sub"


class TritonPythonModel:
    async def execute(
        self, requests: list[pb_utils.InferenceRequest]
    ) -> list[pb_utils.InferenceResponse]:
        return list(await asyncio.gather(*(self._one(request) for request in requests)))

    async def _one(self, request: pb_utils.InferenceRequest) -> pb_utils.InferenceResponse:
        given = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
        a, b = given["INPUT0"], given["INPUT1"]
        calls = [
            pb_utils.InferenceRequest(
                model_name=CALLEE,
                requested_output_names=["OUTPUT0", "OUTPUT1"],
                inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", y)],
            )
            for x, y in ((a, b), (b, a))
        ]
        first, second = await asyncio.gather(*(call.async_exec() for call in calls))
        for answer in (first, second):
            if answer.has_error():
                return pb_utils.InferenceResponse(error=answer.error())
        outputs = [
            next(t for t in answer.output_tensors() if t.name() == name)
            for answer, name in ((first, "OUTPUT0"), (second, "OUTPUT1"))
        ]
        return pb_utils.InferenceResponse(outputs)
