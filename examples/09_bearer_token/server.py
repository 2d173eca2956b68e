"""Example 09: user authentication as a grpc.aio server interceptor (a bearer-token check).

Every call must carry ``authorization: Bearer <token>``; the interceptor refuses any other call
with UNAUTHENTICATED before a Context runs, and the Context reads who called from its metadata.
Combine it with TLS (``ServerConfig(tls=ServerTls(...))``) outside a test: a bearer token sent
in plaintext can be read off the wire.

Run it:   python examples/09_bearer_token/server.py --port 50051 --token alice=s3cret
Call it:  python examples/09_bearer_token/client.py 127.0.0.1:50051 --token s3cret
"""

from __future__ import annotations

import argparse
import functools
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.workers import serve

# The .proto beside this file, compiled when imported (needs grpcio-tools).
pb2, pb2_grpc = grpc.protos_and_services("bearer.proto")


def subject_of(metadata: Any, tokens: Mapping[str, str]) -> str | None:
    """The subject whose token the call carries, or None (compared in constant time)."""
    header = dict(metadata or ()).get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    for known, subject in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            return subject
    return None


class BearerToken(grpc.aio.ServerInterceptor):
    """Refuses every call without a known bearer token (UNAUTHENTICATED)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.tokens = dict(tokens)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        if subject_of(handler_call_details.invocation_metadata, self.tokens) is not None:
            return await continuation(handler_call_details)

        async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "send 'authorization: Bearer <token>' with a token this server knows",
            )

        return grpc.unary_unary_rpc_method_handler(refuse)


class AccountsResources(Resources):
    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.tokens = dict(tokens)


class Whoami(UnaryContext[Any, Any, AccountsResources]):
    method = rpc_method(pb2, "Accounts", "Whoami")

    async def execute(self, request: Any) -> Any:
        subject = subject_of(self.call.metadata, self.resources.tokens)
        return pb2.WhoamiReply(subject=subject or "")


def build(port: int, tokens: Mapping[str, str]) -> Server:
    """The server; tokens map a token to the subject it authenticates."""
    server = Server(port=port, interceptors=[BearerToken(tokens)])
    server.add_service(AccountsResources(tokens), Whoami)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument(
        "--token", action="append", required=True, metavar="SUBJECT=TOKEN", help="repeatable"
    )
    args = parser.parse_args()
    tokens = {}
    for spec in args.token:
        subject, _, token = spec.partition("=")
        tokens[token] = subject
    return serve(functools.partial(build, args.port, tokens))


if __name__ == "__main__":
    raise SystemExit(main())
