"""Prometheus metrics: framework families for any service, Triton's nv_inference_* families for
the inference service, and one summed set from the supervisor of two workers."""

from __future__ import annotations

import asyncio
import sys
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from prometheus_client.parser import text_string_to_metric_families

from asyncinfer.client import AsyncClient, Method
from asyncinfer.client.channel import OWN_CONNECTION
from asyncinfer.errors import ConfigError, InvalidArgument
from asyncinfer.inference.app import build_server
from asyncinfer.testing import ServerProcess, running
from tests.protos import ping_pb2

from ..services import build
from .inference.inference_servers import REPOSITORY, ThreadedServer

PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, labels) -> value) of one scrape."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def matching(samples: Samples, name: str, **labels: str) -> list[float]:
    want = set(labels.items())
    return [v for (n, ls), v in samples.items() if n == name and want <= ls]


async def test_scrape_after_calls_has_consistent_counts() -> None:
    server = build(metrics_port=0)
    async with running(server) as address:
        assert server.metrics_url is not None
        async with AsyncClient(address, PING) as client:
            for _ in range(7):
                # 20 ms inside execute: the call's own overhead stays far below a tenth of it,
                # even on a busy machine.
                await client.call(ping_pb2.PingRequest(payload=b"x", delay_us=20_000))
            with pytest.raises(InvalidArgument):
                await client.call(ping_pb2.PingRequest(payload=b"invalid"))
        types, samples = await asyncio.to_thread(scrape, server.metrics_url)
    rpc = {"service": "asyncinfer.examples.Ping", "method": "Ping"}
    assert types["asyncinfer_rpc_calls"] == "counter"
    assert value(samples, "asyncinfer_rpc_calls_total", **rpc, outcome="completed") == 7
    assert value(samples, "asyncinfer_rpc_calls_total", **rpc, outcome="failed") == 1
    assert value(samples, "asyncinfer_rpc_in_flight", **rpc) == 0
    assert value(samples, "asyncinfer_rpc_waiting", **rpc) == 0
    assert types["asyncinfer_rpc_duration_seconds"] == "histogram"
    assert value(samples, "asyncinfer_rpc_duration_seconds_count", **rpc) == 8
    assert value(samples, "asyncinfer_rpc_duration_seconds_bucket", **rpc, le="+Inf") == 8
    assert value(samples, "asyncinfer_rpc_load_ratio_count", **rpc) == 8
    # Nothing waited for admission, so every call spent (almost) all its time in execute.
    assert value(samples, "asyncinfer_rpc_load_ratio_bucket", **rpc, le="0.1") == 0
    assert value(samples, "asyncinfer_rpc_duration_seconds_sum", **rpc) > 0
    assert "process_resident_memory_bytes" in types
    assert value(samples, "asyncinfer_rpc_calls_total", **{**rpc, "method": "Echo"},
                 outcome="completed") == 0  # fmt: skip


async def test_the_metrics_endpoint_stops_with_the_server() -> None:
    server = build(metrics_port=0)
    async with running(server):
        url = server.metrics_url
        assert url is not None
    assert server.metrics_url is None
    with pytest.raises(OSError):
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=5)


async def test_a_taken_metrics_port_fails_the_start_and_says_so() -> None:
    first = build(metrics_port=0)
    async with running(first):
        assert first.metrics_url is not None
        port = int(first.metrics_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            await build(metrics_port=port).start()


def test_nv_inference_metrics_follow_the_model_statistics() -> None:
    threaded = ThreadedServer(lambda: build_server(REPOSITORY, grpc_port=0, metrics_port=0))
    with threaded as url:
        assert threaded.server is not None and threaded.server.metrics_url is not None
        client = triton.InferenceServerClient(url)
        inputs = [triton.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.arange(16, dtype=np.int32).reshape(1, 16))
        for _ in range(5):
            client.infer("simple", inputs)
        bad = triton.InferInput("INPUT0", [1, 8], "INT32")
        bad.set_data_from_numpy(np.zeros((1, 8), np.int32))
        with pytest.raises(Exception, match="shape"):
            client.infer("simple", [bad, inputs[1]])
        client.close()
        _, samples = scrape(threaded.server.metrics_url)
    simple = {"model": "simple", "version": "1"}
    assert value(samples, "nv_inference_request_success", **simple) == 5
    assert value(samples, "nv_inference_request_failure", **simple) == 1
    assert value(samples, "nv_inference_count", **simple) == 5
    assert value(samples, "nv_inference_exec_count", **simple) == 5
    assert value(samples, "nv_inference_pending_request_count", **simple) == 0
    for name in (
        "nv_inference_request_duration_us",
        "nv_inference_compute_infer_duration_us",
    ):
        assert value(samples, name, **simple) > 0, name
    for name in ("nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
                 "nv_inference_compute_output_duration_us"):  # fmt: skip
        assert value(samples, name, **simple) >= 0, name
    assert value(samples, "nv_inference_request_success", model="simple_int8", version="1") == 0
    infer = {"service": "inference.GRPCInferenceService", "method": "ModelInfer"}
    assert value(samples, "asyncinfer_rpc_calls_total", **infer, outcome="completed") == 5
    assert value(samples, "asyncinfer_rpc_calls_total", **infer, outcome="failed") == 1


async def test_two_workers_expose_one_summed_set() -> None:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--model-repository", str(REPOSITORY),
        "--grpc-port", "0", "--workers", "2", "--metrics-port", "0", "--allow-http", "false",
    ]  # fmt: skip
    with ServerProcess(argv, workers=2, timeout=60) as proc:
        assert proc.metrics_url
        data = np.arange(16, dtype=np.int32).reshape(1, 16)
        calls = 24
        for _ in range(calls):  # a fresh connection each: SO_REUSEPORT spreads them
            client = triton_aio.InferenceServerClient(
                proc.address, channel_args=[(k, v) for k, v in OWN_CONNECTION]
            )
            inputs = [triton_aio.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
            for tensor in inputs:
                tensor.set_data_from_numpy(data)
            await client.infer("simple", inputs)
            await client.close()
        _, samples = await asyncio.to_thread(scrape, proc.metrics_url)
        workers = {
            dict(ls).get("worker") for (n, ls) in samples if n == "process_cpu_seconds_total"
        }
        assert {"0", "1", "supervisor"} <= workers
        # One sample per model and version: the workers' counts were added up.
        assert matching(samples, "nv_inference_request_success", model="simple") == [calls]
        infer = {"service": "inference.GRPCInferenceService", "method": "ModelInfer"}
        assert matching(samples, "asyncinfer_rpc_calls_total", **infer, outcome="completed") == [
            calls
        ]
        assert value(samples, "asyncinfer_rpc_duration_seconds_count", **infer) == calls
        assert proc.stop() == 0
