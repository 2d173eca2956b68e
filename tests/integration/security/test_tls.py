"""TLS and mutual TLS on the gRPC port, with certificates made at run time, driven by
tritonclient (ssl=True) and by every asyncinfer client."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.client import AsyncClient, ChannelPool, Method, SyncClient
from asyncinfer.client.remote import RemoteManager, SyncRemoteManager
from asyncinfer.errors import ConfigError, Unavailable
from asyncinfer.pb.inference import grpc_service_pb2 as pb
from asyncinfer.server import Server
from asyncinfer.tls import ClientTls, ServerTls

from ..inference.inference_servers import ThreadedServer
from .conftest import Certificates

LIVE = Method.of(
    pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name["ServerLive"]
)


def _infer_simple(client: grpcclient.InferenceServerClient) -> None:
    data = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [grpcclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
    for tensor in inputs:
        tensor.set_data_from_numpy(data)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data * 2)


def test_tritonclient_ssl_works_and_plaintext_is_refused(
    certificates: Certificates, inference_server: Callable[..., Callable[[], Server]]
) -> None:
    tls = ServerTls(certificates.server_cert, certificates.server_key)
    with ThreadedServer(inference_server(tls=tls)) as address:
        with grpcclient.InferenceServerClient(
            address, ssl=True, root_certificates=str(certificates.ca)
        ) as client:
            assert client.is_server_live()
            _infer_simple(client)
        with (
            grpcclient.InferenceServerClient(address) as plain,  # no TLS: refused
            pytest.raises(InferenceServerException) as refused,
        ):
            plain.is_server_live(client_timeout=5)
        assert "UNAVAILABLE" in str(refused.value.status())
        # A client that trusts another CA does not accept the server's certificate.
        with (
            grpcclient.InferenceServerClient(
                address, ssl=True, root_certificates=str(certificates.other_ca)
            ) as stranger,
            pytest.raises(InferenceServerException),
        ):
            stranger.is_server_live(client_timeout=5)


def test_mutual_tls_refuses_a_client_without_certificate(
    certificates: Certificates, inference_server: Callable[..., Callable[[], Server]]
) -> None:
    tls = ServerTls(
        certificates.server_cert, certificates.server_key, root_cert=certificates.ca, mutual=True
    )
    with ThreadedServer(inference_server(tls=tls)) as address:
        with grpcclient.InferenceServerClient(
            address,
            ssl=True,
            root_certificates=str(certificates.ca),
            private_key=str(certificates.client_key),
            certificate_chain=str(certificates.client_cert),
        ) as client:
            assert client.is_server_live()
            _infer_simple(client)
        with (
            grpcclient.InferenceServerClient(
                address, ssl=True, root_certificates=str(certificates.ca)
            ) as no_cert,
            pytest.raises(InferenceServerException) as refused,
        ):
            no_cert.is_server_live(client_timeout=5)
        assert "UNAVAILABLE" in str(refused.value.status())


async def test_every_asyncinfer_client_speaks_tls(
    certificates: Certificates, inference_server: Callable[..., Callable[[], Server]]
) -> None:
    tls = ServerTls(
        certificates.server_cert, certificates.server_key, root_cert=certificates.ca, mutual=True
    )
    mine = ClientTls(
        root_cert=certificates.ca, cert=certificates.client_cert, key=certificates.client_key
    )
    with ThreadedServer(inference_server(tls=tls)) as address:
        with SyncClient(address, LIVE, tls=mine) as sync:
            assert sync.call(pb.ServerLiveRequest()).live
        async with AsyncClient(address, LIVE, tls=mine) as aio:
            assert (await aio.call(pb.ServerLiveRequest())).live
        async with ChannelPool(address, size=2, tls=mine) as pool:
            assert (await pool.call(LIVE, pb.ServerLiveRequest())).live
        async with RemoteManager(address, tls=mine) as manager:
            assert manager.get_models() == ["simple"]
        with SyncRemoteManager(address, tls=mine) as blocking:
            assert blocking.get_models() == ["simple"]
        async with AsyncClient(address, LIVE, tls=ClientTls(root_cert=certificates.ca)) as bare:
            with pytest.raises(Unavailable):
                await bare.call(pb.ServerLiveRequest(), timeout=5)


def test_tls_config_errors_name_what_is_missing(certificates: Certificates) -> None:
    with pytest.raises(ConfigError, match="root_cert"):
        ServerTls(certificates.server_cert, certificates.server_key, mutual=True)
    with pytest.raises(ConfigError, match="cannot read server key"):
        ServerTls(certificates.server_cert, "/nonexistent/key.pem").grpc_credentials()
    with pytest.raises(ConfigError, match="needs its key"):
        ClientTls(cert=certificates.client_cert)


def test_server_tls_as_ssl_context_for_an_http_front_end(certificates: Certificates) -> None:
    """The same ServerTls gives an ssl.SSLContext; a handshake over a socket pair succeeds
    with the client certificate and fails without it."""
    import socket
    import ssl
    import threading

    tls = ServerTls(
        certificates.server_cert, certificates.server_key, root_cert=certificates.ca, mutual=True
    )

    def handshake(with_cert: bool) -> str:
        client_context = ssl.create_default_context(cafile=str(certificates.ca))
        if with_cert:
            client_context.load_cert_chain(
                str(certificates.client_cert), str(certificates.client_key)
            )
        server_sock, client_sock = socket.socketpair()
        outcome: list[str] = []

        def serve() -> None:
            try:
                with tls.ssl_context().wrap_socket(server_sock, server_side=True) as s:
                    outcome.append("ok" if s.getpeercert() else "no peer")
            except ssl.SSLError as exc:
                outcome.append(type(exc).__name__)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with client_context.wrap_socket(client_sock, server_hostname="localhost") as c:
                c.sendall(b"x")
        except (ssl.SSLError, OSError):
            pass
        thread.join(10)
        return outcome[0]

    assert handshake(with_cert=True) == "ok"
    assert handshake(with_cert=False) != "ok"
