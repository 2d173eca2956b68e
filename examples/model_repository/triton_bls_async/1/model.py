"""triton_bls_async: the BLS model as an ``async def execute``: for each request, two
``async_exec`` calls to triton_add_sub run at once (the inputs as given, and swapped); the
answer is the first call's OUTPUT0 and the second call's OUTPUT1 (INPUT1 - INPUT0)."""

import asyncio

import triton_python_backend_utils as pb_utils

CALLEE = "triton_add_sub"


class TritonPythonModel:
    async def execute(self, requests):
        return list(await asyncio.gather(*(self._one(request) for request in requests)))

    async def _one(self, request):
        a = pb_utils.get_input_tensor_by_name(request, "INPUT0")
        b = pb_utils.get_input_tensor_by_name(request, "INPUT1")
        swapped = [pb_utils.Tensor("INPUT0", b.as_numpy()), pb_utils.Tensor("INPUT1", a.as_numpy())]
        calls = [
            pb_utils.InferenceRequest(
                model_name=CALLEE, requested_output_names=["OUTPUT0", "OUTPUT1"], inputs=inputs
            )
            for inputs in ([a, b], swapped)
        ]
        first, second = await asyncio.gather(*(call.async_exec() for call in calls))
        for answer in (first, second):
            if answer.has_error():
                return pb_utils.InferenceResponse(error=answer.error())
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.get_output_tensor_by_name(first, "OUTPUT0"),
                pb_utils.get_output_tensor_by_name(second, "OUTPUT1"),
            ]
        )
