"""triton_bls: forwards its inputs to triton_add_sub with a BLS call (``exec``, from a plain
``def execute``) and answers what it got back; a failed call fails this request with the
callee's error. Written against Triton's python-backend API only."""

# Annotations stay text: on tritonserver, pb_utils' classes exist only once the model runs.
from __future__ import annotations

import triton_python_backend_utils as pb_utils

CALLEE = "triton_add_sub"


class TritonPythonModel:
    def execute(
        self, requests: list[pb_utils.InferenceRequest]
    ) -> list[pb_utils.InferenceResponse]:
        responses = []
        for request in requests:
            call = pb_utils.InferenceRequest(
                model_name=CALLEE,
                requested_output_names=["OUTPUT0", "OUTPUT1"],
                inputs=request.inputs(),
            )
            answer = call.exec()
            if answer.has_error():
                responses.append(pb_utils.InferenceResponse(error=answer.error()))
            else:
                responses.append(pb_utils.InferenceResponse(answer.output_tensors()))
        return responses
