"""Ping throughput with workers=1 and workers=2 on one port (SO_REUSEPORT), driven by one load
client process over several channels, each its own connection so the kernel can spread them.

    .venv/bin/python bench/workers.py [--rounds 3] [--seconds 3]

On a 2-core machine the load client competes with the workers for the same two cores, so the
ratio shows what a second worker buys when the client takes a share, not the scaling a server
with its own cores would see. Last line: JSON with `workers2_vs_workers1`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _harness import BUILD, ROOT, ServerSpec, emit, median_of, python, ratio, run_json, serving

SERVING = r"serving on 127\.0\.0\.1:(\d+)"
CONCURRENCY = 64
CHANNELS = 8


def _spec(workers: int) -> ServerSpec:
    command = [
        python(),
        str(ROOT / "examples/01_ping/server.py"),
        "--port",
        "0",
        "--workers",
        str(workers),
    ]
    return ServerSpec(f"workers{workers}", command, lambda _address: True, port_pattern=SERVING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, float]]] = {"workers1": [], "workers2": []}
    with serving([_spec(1), _spec(2)], Path(BUILD) / "bench-logs") as servers:
        for round_ in range(args.rounds):
            for name in ("workers1", "workers2") if round_ % 2 == 0 else ("workers2", "workers1"):
                command = [
                    python(),
                    str(ROOT / "bench/_ping_client.py"),
                    servers[name].address,
                    "--concurrency",
                    str(CONCURRENCY),
                    "--channels",
                    str(CHANNELS),
                    "--seconds",
                    str(args.seconds),
                ]
                sample = run_json(command, timeout=args.seconds + 60)
                samples[name].append(sample)
                print(
                    f"round {round_ + 1} {name}: {sample['throughput']:8.0f}/s "
                    f"p99 {sample['p99_ms']:.2f} ms errors {sample['errors']}",
                    flush=True,
                )
    keys = ["throughput", "p50_ms", "p99_ms", "errors"]
    one, two = median_of(samples["workers1"], keys), median_of(samples["workers2"], keys)
    emit(
        {
            "cores": os.cpu_count(),
            "concurrency": CONCURRENCY,
            "channels": CHANNELS,
            "workers1": one,
            "workers2": two,
            "workers2_vs_workers1": ratio(two["throughput"], one["throughput"]),
            "note": "the load client shares the machine's cores with the workers",
        }
    )


if __name__ == "__main__":
    main()
