"""triton_metrics: OUT = IN, counting what it sees in custom metrics: a counter of requests,
a gauge of the last request's element count and a histogram of element counts."""

# Annotations stay text: on tritonserver, pb_utils' classes exist only once the model runs.
from __future__ import annotations

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        labels = {"model": args["model_name"]}
        self.requests = pb_utils.MetricFamily(
            name="triton_metrics_requests",
            description="Requests the triton_metrics model executed",
            kind=pb_utils.MetricFamily.COUNTER,
        ).Metric(labels=labels)
        self.last = pb_utils.MetricFamily(
            name="triton_metrics_last_elements",
            description="Elements in the last request",
            kind=pb_utils.MetricFamily.GAUGE,
        ).Metric(labels=labels)
        self.sizes = pb_utils.MetricFamily(
            name="triton_metrics_elements",
            description="Elements per request",
            kind=pb_utils.MetricFamily.HISTOGRAM,
        ).Metric(labels=labels, buckets=[1.0, 4.0, 16.0])

    def execute(
        self, requests: list[pb_utils.InferenceRequest]
    ) -> list[pb_utils.InferenceResponse]:
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            self.requests.increment(1)
            self.last.set(values.size)
            self.sizes.observe(values.size)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", values)]))
        return responses
