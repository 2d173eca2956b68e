"""Custom metric families: kinds, labels, histograms, one family per name, export; and the
changes a process instance records (Changes) as the server applies them (Mirror)."""

from __future__ import annotations

import gc
import logging
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

from asyncinfer.errors import UsageError
from asyncinfer.inference import custom_metrics
from asyncinfer.inference.custom_metrics import Changed, Changes, MetricFamily, Mirror


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


# A process instance's side, in a process of its own (its registry is not this one's): the
# changes it would send with its replies, pickled as the pipe pickles them.
INSTANCE = textwrap.dedent(
    """
    import pickle, sys
    from asyncinfer.inference.custom_metrics import MetricFamily, record_changes

    changes = record_changes()
    labels = {"m": "a"}
    counter = MetricFamily("unit_relay_requests", "requests").metric(labels)
    gauge = MetricFamily("unit_relay_level", "level", MetricFamily.GAUGE).metric(labels)
    histogram = MetricFamily("unit_relay_sizes", "sizes", MetricFamily.HISTOGRAM).metric(
        labels, buckets=[1.0, 10.0]
    )
    MetricFamily("unit_relay_idle", "never changed", MetricFamily.GAUGE).metric(labels)
    takes = [changes.take()]
    counter.increment(2)
    gauge.set(5)
    gauge.increment(-1)
    histogram.observe(0.5)
    histogram.observe(3.0)
    takes.append(changes.take())
    takes.append(changes.take())
    counter.increment(3)
    gauge.increment(2)
    histogram.observe(30.0)
    takes.append(changes.take())
    sys.stdout.buffer.write(pickle.dumps(takes))
    """
)


@pytest.fixture(scope="module")
def instance_takes() -> list[Changed | None]:
    out = subprocess.run(
        [sys.executable, "-c", INSTANCE], capture_output=True, check=True, timeout=60
    ).stdout
    takes: list[Changed | None] = pickle.loads(out)
    return takes


def _apply(mirror: Mirror, takes: list[Changed | None]) -> None:
    for changed in takes:
        if changed is not None:
            mirror.apply(changed)


def test_an_instances_changes_give_the_server_its_values(
    instance_takes: list[Changed | None],
) -> None:
    assert instance_takes[2] is None  # nothing changed since the take before
    mirror = Mirror("relay")
    _apply(mirror, instance_takes)
    samples = _samples()
    labels = (("m", "a"),)
    assert samples[("unit_relay_requests_total", labels)] == 5
    assert samples[("unit_relay_level", labels)] == 6  # set 5, -1, +2
    assert samples[("unit_relay_idle", labels)] == 0  # made there, so exported here
    bucket = "unit_relay_sizes_bucket"
    assert [samples[(bucket, (("le", le), ("m", "a")))] for le in ("1.0", "10.0", "+Inf")] == [
        1,
        2,
        3,
    ]
    assert samples[("unit_relay_sizes_sum", labels)] == 33.5
    assert samples[("unit_relay_sizes_count", labels)] == 3
    # A second instance of the model: counts add up, a gauge is what was set last (then added).
    _apply(mirror, instance_takes)
    samples = _samples()
    assert samples[("unit_relay_requests_total", labels)] == 10
    assert samples[("unit_relay_level", labels)] == 6
    assert samples[("unit_relay_sizes_count", labels)] == 6
    # Unloaded: no longer exported once freed.
    mirror.clear()
    gc.collect()
    assert not any(name.startswith("unit_relay") for name, _ in _samples())


def test_a_family_that_clashes_with_the_servers_is_logged_once_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    theirs = MetricFamily("unit_relay_clash", "a gauge here", MetricFamily.GAUGE).metric()
    histogram = MetricFamily("unit_relay_bounds", "h", MetricFamily.HISTOGRAM).metric(buckets=[1.0])
    mirror = Mirror("clashing")
    families = [
        ("unit_relay_clash", "a counter there", "counter"),
        ("unit_relay_bounds", "h", "histogram"),
    ]
    series: list[custom_metrics.SeriesChange] = [
        ("unit_relay_clash", (), None, "add", 1.0, []),
        ("unit_relay_bounds", (), [1.0, 2.0], "observe", 1.5, [0, 1, 0]),
    ]
    with caplog.at_level(logging.WARNING, logger="asyncinfer.inference"):
        mirror.apply((families, series))
        mirror.apply(([], series))
    assert theirs.value() == 0 and histogram.value() == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "'unit_relay_clash' of model 'clashing'" in warnings[0]
    assert "already exists as a gauge" in warnings[0]
    assert "1 bucket bounds here, 2 in the process instance" in warnings[1]


def test_updates_from_threads_while_taking_are_counted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changes = Changes()
    monkeypatch.setattr(custom_metrics, "_changes", changes)
    counter = MetricFamily("unit_relay_threads", "t").metric()
    threads, per_thread = 4, 5000

    def bump() -> None:
        for _ in range(per_thread):
            counter.increment(1)

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for worker in workers:
        worker.start()
    added = 0.0

    def take() -> float:
        changed = changes.take()
        return 0.0 if changed is None else sum(change[4] for change in changed[1])

    while any(worker.is_alive() for worker in workers):
        added += take()
    for worker in workers:
        worker.join(30)
    added += take()
    assert added == threads * per_thread == counter.value()
