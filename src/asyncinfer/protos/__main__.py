"""``python -m asyncinfer.protos``: write typed stubs for mypy, or fill the cache ahead of time.

python -m asyncinfer.protos stubs --out typings service/ping.proto
python -m asyncinfer.protos compile service/ping.proto      # e.g. in a container build
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from . import default_cache, write_stubs
from ._sources import find_sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asyncinfer.protos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stubs = commands.add_parser("stubs", help="write typed *_pb2.pyi stubs (mypy-protobuf)")
    stubs.add_argument("--out", required=True, help="the folder mypy_path points at")
    compile_ = commands.add_parser("compile", help="compile into the cache; print each entry")
    for command in (stubs, compile_):
        command.add_argument("-I", "--include", action="append", default=[], help="import root")
        command.add_argument("protos", nargs="+", help=".proto files")
    args = parser.parse_args(argv)
    try:
        if args.command == "stubs":
            for path in write_stubs(args.protos, args.out, include=args.include):
                print(path)
        else:
            for proto in args.protos:
                print(default_cache().entry(find_sources(proto, args.include)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
