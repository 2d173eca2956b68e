"""The HTTP port's security: TLS and mutual TLS (certificates made at run time, tritonclient.http
and curl), and restricted APIs with key headers (tritonserver's --http-restricted-api: 403 and
its text)."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import shutil
import ssl
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from asyncinfer.inference.app import build_server
from asyncinfer.restriction import Restrictions
from asyncinfer.server import Server
from asyncinfer.tls import ServerTls

from ..inference.inference_servers import ThreadedServer
from .conftest import Certificates


def _server(repository: pathlib.Path, **http: object) -> Server:
    return build_server(repository, grpc_port=0, http_port=0, **http)  # type: ignore[arg-type]


@pytest.fixture
def serve(simple_repository: pathlib.Path) -> Iterator[functools.partial[str]]:
    servers: list[ThreadedServer] = []

    def start(**http: object) -> str:
        server = ThreadedServer(functools.partial(_server, simple_repository, **http))
        server.__enter__()
        servers.append(server)
        return server.http_address

    yield functools.partial(start)
    for server in servers:
        server.__exit__(None, None, None)


def _infer(client: httpclient.InferenceServerClient) -> None:
    data = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [httpclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
    for tensor in inputs:
        tensor.set_data_from_numpy(data)
    np.testing.assert_array_equal(client.infer("simple", inputs).as_numpy("OUTPUT0"), data * 2)


def _context(certificates: Certificates, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.ca))
    if client_cert:
        context.load_cert_chain(str(certificates.client_cert), str(certificates.client_key))
    return context


def test_tls_with_tritonclient_http_and_plaintext_refused(
    certificates: Certificates, serve: functools.partial[str]
) -> None:
    address = serve(http_tls=ServerTls(certificates.server_cert, certificates.server_key))
    client = httpclient.InferenceServerClient(
        address, ssl=True, ssl_context_factory=lambda: _context(certificates)
    )
    try:
        assert client.is_server_live()
        _infer(client)
    finally:
        client.close()
    plain = httpclient.InferenceServerClient(address, connection_timeout=5, network_timeout=5)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the TLS server drops a plaintext request
            plain.is_server_live()
    finally:
        plain.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_mutual_tls_needs_a_client_certificate(
    certificates: Certificates, serve: functools.partial[str]
) -> None:
    tls = ServerTls(
        certificates.server_cert, certificates.server_key, root_cert=certificates.ca, mutual=True
    )
    address = serve(http_tls=tls)
    url = f"https://{address}/v2/health/ready"
    base = ["curl", "-s", "--max-time", "10", "--cacert", str(certificates.ca), "-o", "/dev/null",
            "-w", "%{http_code}"]  # fmt: skip
    with_cert = ["--cert", str(certificates.client_cert), "--key", str(certificates.client_key)]
    done = subprocess.run([*base, *with_cert, url], capture_output=True, text=True, timeout=30)
    assert done.stdout == "200"
    refused = subprocess.run([*base, url], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and refused.stdout == "000"


def test_restricted_apis_need_their_key_header(serve: functools.partial[str]) -> None:
    restrictions = Restrictions.parse(["model-repository,statistics:admin-key=s3cret"])
    address = serve(http_restrictions=restrictions)
    client = httpclient.InferenceServerClient(address)
    admin = httpclient.InferenceServerClient(address)
    try:
        _infer(client)  # inference is not restricted
        with pytest.raises(InferenceServerException) as refused:
            client.get_inference_statistics("simple")
        assert refused.value.status() == "403"
        assert refused.value.message() == "This API is restricted, expecting header 'admin-key'"
        with pytest.raises(InferenceServerException, match="expecting header 'admin-key'"):
            client.get_model_repository_index(headers={"admin-key": "wrong"})
        stats = admin.get_inference_statistics("simple", headers={"admin-key": "s3cret"})
        assert stats["model_stats"][0]["name"] == "simple"
    finally:
        client.close()
        admin.close()


def test_cli_flags_reach_the_http_port(certificates: Certificates) -> None:
    from asyncinfer.cli import _inference_factory, _parser

    args = _parser().parse_args(
        ["serve", "--model-repository", "x", "--http-use-ssl", "--http-server-cert",
         str(certificates.server_cert), "--http-server-key", str(certificates.server_key),
         "--http-restricted-api", "health:k=v"]
    )  # fmt: skip
    (front_end,) = _inference_factory(args)().front_ends
    assert dataclasses.asdict(front_end.tls)["cert"] == str(certificates.server_cert)  # type: ignore[attr-defined]
    assert front_end.restrictions.groups[0].key == "k"  # type: ignore[attr-defined]
