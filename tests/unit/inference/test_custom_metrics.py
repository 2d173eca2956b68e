"""Custom metric families: kinds, labels, histograms, one family per name, export."""

from __future__ import annotations

import gc

import pytest

from asyncinfer.errors import UsageError
from asyncinfer.inference import custom_metrics
from asyncinfer.inference.custom_metrics import MetricFamily


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in custom_metrics.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_counter_gauge_and_histogram_are_exported_with_their_labels() -> None:
    counter = MetricFamily("unit_requests", "requests", MetricFamily.COUNTER).metric({"m": "a"})
    gauge = MetricFamily("unit_level", "level", MetricFamily.GAUGE).metric({"m": "a"})
    histogram = MetricFamily("unit_sizes", "sizes", MetricFamily.HISTOGRAM).metric(
        {"m": "a"}, buckets=[1.0, 10.0]
    )
    counter.increment(2)
    gauge.set(5)
    gauge.increment(-1)
    for value in (0.5, 3.0, 30.0):
        histogram.observe(value)
    samples = _samples()
    labels = (("m", "a"),)
    assert samples[("unit_requests_total", labels)] == 2
    assert samples[("unit_level", labels)] == 4
    assert samples[("unit_sizes_bucket", (("le", "1.0"), ("m", "a")))] == 1
    assert samples[("unit_sizes_bucket", (("le", "10.0"), ("m", "a")))] == 2
    assert samples[("unit_sizes_bucket", (("le", "+Inf"), ("m", "a")))] == 3
    assert samples[("unit_sizes_sum", labels)] == 33.5
    assert histogram.value() == 3


def test_same_name_is_the_same_family_and_another_kind_is_refused() -> None:
    first = MetricFamily("unit_shared", "shared").metric({"k": "v"})
    second = MetricFamily("unit_shared", "shared").metric({"k": "v"})
    assert first is second
    with pytest.raises(UsageError, match="already exists as a counter"):
        MetricFamily("unit_shared", "shared", MetricFamily.GAUGE)


def test_wrong_use_is_refused() -> None:
    counter = MetricFamily("unit_wrong", "wrong").metric()
    with pytest.raises(UsageError, match="only goes up"):
        counter.increment(-1)
    with pytest.raises(UsageError, match="set\\(\\) is for gauge"):
        counter.set(1)
    with pytest.raises(UsageError, match="bucket bounds"):
        MetricFamily("unit_hist", "h", MetricFamily.HISTOGRAM).metric()
    with pytest.raises(UsageError, match="not a Prometheus metric name"):
        MetricFamily("9bad name", "x")


def test_a_family_nobody_refers_to_is_no_longer_exported() -> None:
    MetricFamily("unit_gone", "gone").metric().increment()
    gc.collect()  # a family and its metrics refer to each other: the collector frees them
    assert not any(name == "unit_gone_total" for name, _ in _samples())
