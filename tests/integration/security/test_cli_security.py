"""The serve flags (tritonserver's TLS and restricted-protocol flags) and the load commands'
TLS flags (perf_analyzer's names), end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.testing import ServerProcess

from .conftest import Certificates


def test_serve_with_tls_and_a_restricted_protocol_and_a_tls_load_client(
    certificates: Certificates, simple_repository: pathlib.Path
) -> None:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve",
        "--model-repository", str(simple_repository), "--grpc-port", "0",
        "--allow-http", "false", "--allow-metrics", "false",
        "--grpc-use-ssl=true", "--grpc-server-cert", str(certificates.server_cert),
        "--grpc-server-key", str(certificates.server_key),
        "--grpc-restricted-protocol=model-config:admin-key=s3cret",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        with grpcclient.InferenceServerClient(
            proc.address, ssl=True, root_certificates=str(certificates.ca)
        ) as client:
            assert client.is_server_live()
            with pytest.raises(InferenceServerException, match="expecting header"):
                client.get_model_config("simple")
            config = client.get_model_config(
                "simple", headers={"triton-grpc-protocol-admin-key": "s3cret"}
            )
            assert config.config.name == "simple"
        load = subprocess.run(
            [
                sys.executable, "-m", "asyncinfer.cli", "sync", proc.address,
                "/inference.GRPCInferenceService/ServerLive", "--count", "3",
                "--ssl-grpc-use-ssl",
                "--ssl-grpc-root-certifications-file", str(certificates.ca),
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert load.returncode == 0, load.stdout + load.stderr
    assert "3 ok" in load.stdout, load.stdout


def test_serve_refuses_half_given_tls_flags(certificates: Certificates) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "x:y", "--grpc-use-ssl",
            "--grpc-server-cert", str(certificates.server_cert),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key" in done.stderr
