"""pb_utils.MetricFamily and Metric: Triton's custom-metrics API over asyncinfer's own
(inference/custom_metrics.py), so both kinds of model export through the same endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...custom_metrics import Metric
from ...custom_metrics import MetricFamily as _Family

__all__ = ["Metric", "MetricFamily"]


class MetricFamily(_Family):
    """``pb_utils.MetricFamily(name, description, kind)``; ``Metric(labels=..., buckets=...)``
    is one labelled series (``increment``, ``set``, ``observe``, ``value``)."""

    def Metric(
        self, labels: Mapping[str, str] | None = None, buckets: Sequence[float] | None = None
    ) -> Metric:
        return self.metric(labels, buckets)
