"""Example 09's client: one call with the given token, one without; prints both outcomes."""

from __future__ import annotations

import argparse

import grpc

pb2, pb2_grpc = grpc.protos_and_services("bearer.proto")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    with grpc.insecure_channel(args.target) as channel:
        stub = pb2_grpc.AccountsStub(channel)
        reply = stub.Whoami(
            pb2.WhoamiRequest(), metadata=[("authorization", f"Bearer {args.token}")], timeout=10
        )
        print(f"with token: subject={reply.subject}")
        try:
            stub.Whoami(pb2.WhoamiRequest(), timeout=10)
        except grpc.RpcError as exc:
            print(f"without token: {exc.code().name}: {exc.details()}")
        else:
            print("without token: answered (the interceptor did not refuse it)")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
