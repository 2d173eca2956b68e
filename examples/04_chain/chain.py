"""Example 04: run the chain — Model A, Model B and the glue between them.

All three in one process (each its own Server, on one event loop), the glue on --port:
    python examples/04_chain/chain.py --port 50060
Or each on its own, as in production (any of them with --workers N):
    python examples/04_chain/chain.py --role model-a --port 50061
    python examples/04_chain/chain.py --role model-b --port 50062
    python examples/04_chain/chain.py --role glue --port 50060 \\
        --model-a 127.0.0.1:50061 --model-b 127.0.0.1:50062
Call it:
    python examples/04_chain/client.py 127.0.0.1:50060
Trace it (each role exports its spans to an OpenTelemetry collector; one call is one trace):
    python examples/04_chain/chain.py --role model-a --port 50061 --trace-config level=TIMESTAMPS \
        --trace-config rate=1 --trace-config opentelemetry,resource=service.name=model-a
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal

from services import build_glue, build_model_a, build_model_b  # services.py beside this script

import asyncinfer
from asyncinfer.tracing import TraceConfig
from asyncinfer.workers import run_loop


async def serve_all(host: str, port: int, metrics_port: int | None, trace: TraceConfig) -> int:
    """Model A and Model B on free ports, the glue on ``port``; until SIGTERM/SIGINT."""
    model_a, model_b = build_model_a(host, trace=trace), build_model_b(host, trace=trace)
    await model_a.start()
    await model_b.start()
    glue = build_glue(
        model_a.address, model_b.address, host, port, metrics_port=metrics_port, trace=trace
    )
    await glue.start()
    print(f"asyncinfer: model A on {model_a.address}, model B on {model_b.address}", flush=True)
    if glue.metrics_url:
        print(f"asyncinfer: metrics on {glue.metrics_url}", flush=True)
    print(f"asyncinfer: (pid {os.getpid()}) serving on {glue.address}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await glue.stop()  # the glue first: it drains its calls to the models
    await model_b.stop()
    await model_a.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("all", "model-a", "model-b", "glue"), default="all")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50060, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--model-a", help="the glue's Model A target, HOST:PORT")
    parser.add_argument("--model-b", help="the glue's Model B target, HOST:PORT")
    parser.add_argument(
        "--trace-config",
        action="append",
        default=[],
        metavar="[MODE,]SETTING=VALUE",
        help="tracing, as `asyncinfer serve --trace-config` (repeatable)",
    )
    args = parser.parse_args(argv)
    trace = TraceConfig.parse(args.trace_config)
    if args.role == "all":
        return run_loop(serve_all(args.host, args.port, args.metrics_port, trace))
    options: dict[str, object] = {"workers": args.workers, "reuse_port": args.workers > 1}
    options["metrics_port"] = args.metrics_port
    options["trace"] = trace
    if args.role == "glue":
        if not (args.model_a and args.model_b):
            parser.error("--role glue needs --model-a and --model-b")
        factory = functools.partial(
            build_glue, args.model_a, args.model_b, args.host, args.port, **options
        )
    else:
        build = build_model_a if args.role == "model-a" else build_model_b
        factory = functools.partial(build, args.host, args.port, **options)
    return asyncinfer.serve(factory)


if __name__ == "__main__":
    raise SystemExit(main())
