"""Fixtures: certificates made at run time (trustme) and a one-model inference repository."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from collections.abc import Callable

import pytest
import trustme

from asyncinfer.inference.app import build_server
from asyncinfer.server import Server

from ..inference.inference_servers import REPOSITORY


@dataclasses.dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, a server certificate for 127.0.0.1/localhost, and a client one."""

    ca: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path
    other_ca: pathlib.Path  # a CA nobody's certificate chains to


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certs")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.test")
    paths = {
        "ca": ca.cert_pem,
        "other_ca": other.cert_pem,
        "server_cert": server.cert_chain_pems[0],
        "server_key": server.private_key_pem,
        "client_cert": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
    }
    for name, blob in paths.items():
        blob.write_to_path(str(folder / f"{name}.pem"))
    return Certificates(**{name: folder / f"{name}.pem" for name in paths})


@pytest.fixture(scope="session")
def simple_repository(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A repository holding only the example `simple` model (fast to load)."""
    folder = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPOSITORY / "simple", folder / "simple")
    return folder


@pytest.fixture
def inference_server(simple_repository: pathlib.Path) -> Callable[..., Callable[[], Server]]:
    """``inference_server(**config)``: a factory of a server over `simple` with config changes."""

    def make(**changes: object) -> Callable[[], Server]:
        def factory() -> Server:
            server = build_server(simple_repository, grpc_port=0)
            server.config = dataclasses.replace(server.config, **changes)
            return server

        return factory

    return make
