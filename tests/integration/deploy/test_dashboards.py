"""The Grafana dashboard and the Prometheus scrape config in deploy/: both load, and every
metric the dashboard queries exists on a live inference server scraped the way the config
says (with latency histograms on, as the dashboard's latency panels need)."""

from __future__ import annotations

import json
import pathlib
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml

from asyncinfer.inference.app import build_server
from asyncinfer.inference.latency import MetricsConfig

from ..inference.inference_servers import REPOSITORY, ThreadedServer

DEPLOY = pathlib.Path(__file__).parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "asyncinfer-dashboard.json"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
#: A metric name in PromQL: asyncinfer's and Triton's families (functions and labels are not).
METRIC = re.compile(r"\b((?:nv|asyncinfer)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMETHEUS_SUFFIXES = ("_total",)


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def family_of(name: str, families: set[str]) -> str | None:
    """The family a sample name in a query belongs to (histogram and counter suffixes off)."""
    for suffix in ("", *HISTOGRAM_SUFFIXES, *PROMETHEUS_SUFFIXES):
        if name.endswith(suffix):
            base = name[: len(name) - len(suffix)] if suffix else name
            if base in families:
                return base
    return None


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[ThreadedServer, str]]:
    config = MetricsConfig(histogram_latencies=True)
    server = ThreadedServer(
        lambda: build_server(REPOSITORY, grpc_port=0, metrics_port=0, metrics_config=config)
    )
    with server as address:
        yield server, address


def test_the_dashboard_queries_only_metrics_a_live_server_serves(
    live: tuple[ThreadedServer, str],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = scrape["scrape_configs"]
    assert job["scheme"] == "http" and job["static_configs"][0]["targets"]
    threaded, address = live
    client = triton.InferenceServerClient(address)
    data = np.arange(16, dtype=np.int32).reshape(1, 16)
    tensors = [triton.InferInput(name, [1, 16], "INT32") for name in ("INPUT0", "INPUT1")]
    for tensor in tensors:
        tensor.set_data_from_numpy(data)
    client.infer("simple", tensors)
    assert threaded.server is not None and threaded.server.metrics_url is not None
    # Scrape as the config says: its metrics_path on the server's metrics host and port.
    where = urllib.parse.urlsplit(threaded.server.metrics_url)
    url = f"{job['scheme']}://{where.netloc}{job['metrics_path']}"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    queried = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    assert len(queried) >= 15  # the panels of the issue: throughput, latency, queue, ...
    missing = sorted(name for name in queried if family_of(name, families) is None)
    assert missing == [], f"the dashboard queries metrics the server does not serve: {missing}"
    # And the ones with samples have them after a request (histograms included).
    assert 'asyncinfer_inference_request_histogram_ms_count{model="simple",version="1"} 1.0' in text
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(titles)
