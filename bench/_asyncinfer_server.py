"""Serves a model repository with asyncinfer's inference service through ``asyncinfer.serve``,
the same process model as the ``asyncinfer`` console script; prints the bound address.

The benchmarks start it as a subprocess; ``asyncinfer serve --model-repository`` is the user's
spelling of the same thing.

Run: python bench/_asyncinfer_server.py --model-repository examples/model_repository --port 0
"""

from __future__ import annotations

import argparse
import functools
import sys

import asyncinfer
from asyncinfer.inference.app import build_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    factory = functools.partial(
        build_server, args.model_repository, host=args.host, grpc_port=args.port,
        workers=args.workers,
    )  # fmt: skip
    return asyncinfer.serve(factory)


if __name__ == "__main__":
    sys.exit(main())
