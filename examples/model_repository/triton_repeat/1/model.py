"""triton_repeat: a decoupled model; for IN = [v0, v1, ...] it sends OUT = [v0], then [v1], ...
and then the final flag, through each request's response sender. An empty IN gets only the
final flag. Written against Triton's python-backend API only."""

# Annotations stay text: on tritonserver, pb_utils' classes exist only once the model runs.
from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests: list[pb_utils.InferenceRequest]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            for value in values:
                if request.is_cancelled():
                    break
                out = pb_utils.Tensor("OUT", np.array([value], dtype=np.int32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
