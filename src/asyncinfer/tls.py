"""TLS settings: a server's certificate (and, for mutual TLS, the CA its clients must show), and
a client's trust roots and optional certificate; one place that reads the PEM files.

The server side follows tritonserver's flags (``--grpc-use-ssl``, ``--grpc-use-ssl-mutual``,
``--grpc-server-cert``, ``--grpc-server-key``, ``--grpc-root-cert``). :class:`ServerTls` is not
tied to gRPC: ``grpc_credentials()`` serves the gRPC port and ``ssl_context()`` gives the same
settings to an HTTP front end (``--http-use-ssl`` ...), so both ports check certificates alike.

Files are read when credentials are made (at server start or channel open), not when the
dataclass is built, so a ServerConfig stays picklable and cheap to copy; a missing or unreadable
file is a ConfigError naming the flag and the path.
"""

from __future__ import annotations

import dataclasses
import pathlib
import ssl
from typing import Any

import grpc

from .errors import ConfigError

__all__ = ["ClientTls", "ServerTls"]

PathLike = str | pathlib.Path


def _read(path: PathLike, what: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's TLS: its certificate chain and key; with ``mutual``, clients must present a
    certificate signed by ``root_cert``."""

    #: PEM certificate chain of the server (--grpc-server-cert).
    cert: PathLike
    #: PEM private key of that certificate (--grpc-server-key).
    key: PathLike
    #: PEM CA certificates that client certificates must chain to (--grpc-root-cert).
    root_cert: PathLike | None = None
    #: Require and verify a client certificate (--grpc-use-ssl-mutual).
    mutual: bool = False

    def __post_init__(self) -> None:
        if not self.cert or not self.key:
            raise ConfigError("TLS needs both a server certificate and its key")
        if self.mutual and not self.root_cert:
            raise ConfigError(
                "mutual TLS needs the CA that signs client certificates: give root_cert "
                "(--grpc-root-cert)"
            )

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``grpc.aio.Server.add_secure_port``."""
        pair = (_read(self.key, "server key"), _read(self.cert, "server certificate"))
        root = _read(self.root_cert, "root certificate") if self.root_cert else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=root, require_client_auth=self.mutual
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The same settings as a server-side ``ssl.SSLContext`` (for an HTTP front end)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
            if self.root_cert:
                context.load_verify_locations(str(self.root_cert))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the server certificate or key: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED if self.mutual else ssl.CERT_NONE
        return context


@dataclasses.dataclass(frozen=True, slots=True)
class ClientTls:
    """A client's TLS: whom to trust (``root_cert``; None: the system's roots) and, for mutual
    TLS, the client's own certificate and key."""

    root_cert: PathLike | None = None
    cert: PathLike | None = None
    key: PathLike | None = None
    #: Check the server certificate against this name instead of the target's host.
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a client certificate needs its key, and a key its certificate")

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        root = _read(self.root_cert, "root certificate") if self.root_cert else None
        key = _read(self.key, "client key") if self.key else None
        cert = _read(self.cert, "client certificate") if self.cert else None
        return grpc.ssl_channel_credentials(root, key, cert)

    def grpc_options(self) -> list[tuple[str, Any]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

    def ssl_context(self) -> ssl.SSLContext:
        """The same settings as a client-side ``ssl.SSLContext`` (for HTTPS clients)."""
        try:
            context = ssl.create_default_context(
                cafile=str(self.root_cert) if self.root_cert else None
            )
            if self.cert is not None and self.key is not None:
                context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client's TLS files: {exc}") from None
        return context
