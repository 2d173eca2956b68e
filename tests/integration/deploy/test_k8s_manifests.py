"""deploy/k8s, checked offline: core-API manifests against the Kubernetes schemas
(kubernetes-validate, strict), custom resources (KServe, Prometheus operator) for the fields
their documentation requires, and the manifests against each other and against the things they
name: the console script's flags, the metrics the server really exports, the image's user, and
example 03's shared-memory path run with the sidecar Pod's own commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import numpy as np
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from asyncinfer.cli import _parser
from asyncinfer.inference.app import build_server
from asyncinfer.shm.tensors import read_tensor
from asyncinfer.testing import running

from ..._nginx import nginx_lb

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
EXAMPLE_03 = ROOT / "examples" / "03_shm_preprocess"
#: The oldest release with GA gRPC probes, and the newest the validator knows.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CUSTOM_GROUPS = ("serving.kserve.io", "monitoring.coreos.com", "kustomize.config.k8s.io")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in _documents() if d["kind"] == kind and name in (None, _name(d))]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _name(doc: dict[str, Any]) -> str:
    return str(doc.get("metadata", {}).get("name", ""))


def _custom(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS


@pytest.mark.parametrize("version", VERSIONS)
def test_every_core_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for file, doc in _documents():
        if _custom(doc):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{file} {doc['kind']}/{_name(doc)} is invalid for {version}: {exc}")
        checked.append(f"{doc['kind']}/{_name(doc)}")
    print(f"\nkubernetes-validate {version} (strict): {len(checked)} valid: {', '.join(checked)}")
    assert {"Deployment/asyncinfer", "Deployment/asyncinfer-preprocess", "Service/asyncinfer",
            "Service/asyncinfer-headless", "HorizontalPodAutoscaler/asyncinfer",
            "PodDisruptionBudget/asyncinfer", "ConfigMap/prometheus-adapter-asyncinfer",
            "PersistentVolumeClaim/asyncinfer-models"} <= set(checked)  # fmt: skip


def _require(doc: dict[str, Any], *paths: str) -> None:
    for path in paths:
        value: Any = doc
        for key in path.split("."):
            assert isinstance(value, dict) and key in value, f"{doc['kind']}: {path} is required"
            value = value[key]
        assert value not in (None, "", [], {}), f"{doc['kind']}: {path} is empty"


def test_the_kserve_resources_have_their_required_fields() -> None:
    runtime = _one("ServingRuntime")
    _require(runtime, "spec.containers", "spec.supportedModelFormats", "spec.protocolVersions")
    for container in runtime["spec"]["containers"]:
        _require(container, "name", "image")
    assert all("name" in f for f in runtime["spec"]["supportedModelFormats"])
    service = _one("InferenceService")
    _require(service, "spec.predictor.model.modelFormat.name", "spec.predictor.model.storageUri")
    model = service["spec"]["predictor"]["model"]
    # The v2 protocol over gRPC, served by our runtime, for a format it declares.
    assert model["protocolVersion"] == "grpc-v2" in runtime["spec"]["protocolVersions"]
    assert model["runtime"] == _name(runtime)
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe injects storage into
    args = _parser().parse_args(["serve", *container["args"]])
    assert args.model_repository == "/mnt/models"  # where KServe puts storageUri
    assert {"name": "h2c", "containerPort": args.grpc_port, "protocol": "TCP"} in container["ports"]


def test_the_service_monitor_has_its_required_fields_and_finds_one_service() -> None:
    monitor = _one("ServiceMonitor")
    _require(monitor, "spec.selector.matchLabels", "spec.endpoints")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [d for _, d in _documents() if d["kind"] == "Service"
                if wanted.items() <= d["metadata"]["labels"].items()]  # fmt: skip
    assert [_name(s) for s in services] == ["asyncinfer"]  # each Pod scraped once
    ports = {p["name"] for p in services[0]["spec"]["ports"]}
    assert all(endpoint["port"] in ports for endpoint in monitor["spec"]["endpoints"])


def _serve_args(container: dict[str, Any]) -> Any:
    return _parser().parse_args(["serve", *container["args"]])


def test_the_deployment_probes_drains_and_mounts_what_the_server_needs() -> None:
    deployment = _one("Deployment", "asyncinfer")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    args = _serve_args(container)  # the image's entrypoint is `asyncinfer serve`
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": args.grpc_port}, probe  # health, server ""
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(args.metrics_port)
    assert {p["containerPort"] for p in container["ports"]} == {args.grpc_port, args.metrics_port}
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + args.grace
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"requests", "limits"} <= set(container["resources"])
    image_user = [i["value"] for i in DockerfileParser(str(ROOT / "deploy/container/Dockerfile"))
                  .structure if i["instruction"] == "USER"]  # fmt: skip
    assert pod["spec"]["securityContext"]["runAsUser"] == int(image_user[-1].split(":")[0])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_services_pdb_and_hpa_point_at_the_deployment() -> None:
    deployment = _one("Deployment", "asyncinfer")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for name in ("asyncinfer", "asyncinfer-headless"):
        assert _one("Service", name)["spec"]["selector"].items() <= labels.items()
    assert _one("Service", "asyncinfer-headless")["spec"]["clusterIP"] == "None"
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "asyncinfer")
    preprocess = _one("Deployment", "asyncinfer-preprocess")["spec"]["template"]["metadata"]
    assert _one("Service", "asyncinfer-preprocess")["spec"]["selector"].items() <= (
        preprocess["labels"].items()
    )


def _adapter_rule() -> dict[str, Any]:
    config = yaml.safe_load(
        _one("ConfigMap", "prometheus-adapter-asyncinfer")["data"]["config.yaml"]
    )
    (rule,) = config["rules"]
    return rule  # type: ignore[no-any-return]


async def test_the_hpa_metric_is_one_the_server_exports(tmp_path: Path) -> None:
    """The adapter rule's series is scraped from a real server, and its name is the HPA's."""
    rule = _adapter_rule()
    series = rule["seriesQuery"].split("{")[0]
    assert rule["name"]["matches"] == f"^{series}$"
    (metric,) = _one("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"]
    pytest.importorskip("onnxruntime", reason="the batched example model is an ONNX model")
    build = [sys.executable, str(ROOT / "examples" / "build_models.py")]
    await asyncio.to_thread(subprocess.run, build, check=True, timeout=120)
    server = build_server(ROOT / "examples" / "model_repository", grpc_port=0, metrics_port=0,
                          model_control_mode="explicit", load_models=["mlp_onnx"])  # fmt: skip
    async with running(server):
        assert server.metrics_url is not None
        text = await asyncio.to_thread(_scrape, server.metrics_url)
    assert f'{series}{{model="mlp_onnx",version="1"}} 0.0' in text


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def test_kustomization_lists_every_core_manifest() -> None:
    listed = set(_one("Kustomization")["resources"])
    core_files = {file for file, doc in _documents() if not _custom(doc)}
    assert listed == core_files - {"kustomization.yaml"}


def _container(name: str) -> dict[str, Any]:
    pod = _one("Deployment", "asyncinfer-preprocess")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


@pytest.fixture
def sidecar_pod() -> Iterator[str]:
    """The sidecar Pod's two containers, run with their own commands as two processes that
    share an IPC namespace (as containers of one Pod do), on free loopback ports."""
    ports = {"50061": str(nginx_lb.free_port()), "50062": str(nginx_lb.free_port())}
    swap = {**ports, "0.0.0.0": "127.0.0.1", "127.0.0.1:50061": f"127.0.0.1:{ports['50061']}"}
    processes = []
    try:
        for name in ("model", "preprocess"):
            container = _container(name)
            command = [swap.get(part, part) for part in container["command"]]
            assert command[0] == "python" and container["workingDir"].endswith(EXAMPLE_03.name)
            process = subprocess.Popen([sys.executable, *command[1:]], cwd=EXAMPLE_03,
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
            processes.append(process)
            assert process.stdout is not None
            assert process.stdout.readline().startswith("listening on "), name
        yield f"127.0.0.1:{ports['50062']}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
            assert process.stdout is not None
            process.stdout.close()


def test_the_sidecar_pod_hands_tensors_over_system_v_shared_memory(sidecar_pod: str) -> None:
    sys.path.insert(0, str(EXAMPLE_03))
    import shm_model
    import shm_preprocess

    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (64, 64, 3), np.uint8) for _ in range(3)]
    request = shm_preprocess.ClassifyRequest(images=[shm_preprocess.encode_ppm(i) for i in images])
    with grpc.insecure_channel(sidecar_pod) as channel:
        classify = channel.unary_unary(
            shm_preprocess.Classify.rpc_path(),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=shm_preprocess.ClassifyReply.FromString,
        )
        reply = classify(request, timeout=30)
    assert reply.transport == "shm"
    expected = np.empty((3, 3, 64, 64), np.float32)
    shm_preprocess.normalize_into(images, expected)
    with read_tensor(reply.scores, None) as scores:
        assert scores.shape == (3, shm_model.CLASSES)
        np.testing.assert_allclose(scores, shm_model._classify(expected), rtol=1e-5)
    # The model container's exec probe, as the kubelet would run it.
    probe = _container("model")["readinessProbe"]["exec"]["command"]
    model_port = [p for p in _container("preprocess")["command"] if p.startswith("127.0.0.1:")]
    assert probe[-1] == model_port[0]
    assert json.dumps(probe).startswith('["asyncinfer", "health"')
