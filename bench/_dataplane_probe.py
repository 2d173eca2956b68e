"""In-process CPU cost of one `simple` ModelInfer through asyncinfer's handler and the bare one's.

Builds asyncinfer's inference server on examples/model_repository, takes the real ModelInfer
method handler (framework admission, reply limits and tracing included) and awaits it directly
with the serialized request a tritonclient would send: no network, no grpc.aio call. For
comparison it runs bench/_bare_triton.py's ``infer`` on the same bytes (parse, infer,
serialize). Each round times N requests with ``time.process_time``, in tasks of 64
(``PER_TASK``); the figure is the median of 5 rounds in µs per request. The real server's gap
is larger (cache effects), so this is the lower bound that data-plane work for issue 10 is
measured with.

``--repository DIR --models A,B`` probes other models that take ``simple``'s request (INT32
INPUT0 and INPUT1 [1, 16], outputs OUTPUT0 and OUTPUT1), each a side of its own, e.g.
bench/triton_models' ``triton_add_sub`` and ``triton_bls``; ``--in-threads NAME`` adds a copy
of model NAME, ``NAME_in_threads``, whose config sets ``sync_execute: "thread"`` (the
repository is copied to a temporary folder first), to set a plain def execute kept in worker
threads beside the same one moved to the loop.

Run: .venv/bin/python bench/_dataplane_probe.py [--requests N] [--profile]
     [--repository DIR --models A,B] [--in-threads NAME]
The last stdout line is one JSON object: per side, the median and the rounds; ``ratio``, the
median of the rounds' asyncinfer / bare (the first model's, with --models).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import _bare_triton as bare
import numpy as np
from tritonclient.grpc import service_pb2 as tpb

from asyncinfer._handlers import make_handler
from asyncinfer.admission import Admission
from asyncinfer.inference import build_server
from asyncinfer.inference.rpc.infer import ModelInferRpc

REPOSITORY = Path(__file__).resolve().parent.parent / "examples" / "model_repository"
ROUNDS = 5


def _request_bytes(model: str = "simple") -> bytes:
    request = tpb.ModelInferRequest(model_name=model)
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.arange(16, dtype=np.int32).tobytes())
    for name in ("OUTPUT0", "OUTPUT1"):
        request.outputs.add(name=name)
    data: bytes = request.SerializeToString()
    return data


class _Call:
    """The parts of a grpc.aio servicer context that the handler reads."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    def time_remaining(self) -> float | None:
        return None

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return ()

    def add_done_callback(self, callback: Callable[..., object]) -> None:
        pass


#: n -> a coroutine running n requests: None, or the CPU seconds they took when the side
#: times itself (to leave out work made ready for them, as bench/_http_probe.py's do).
Loop = Callable[[int], Coroutine[Any, Any, float | None]]


#: Requests run in one task. grpc.aio runs each call in a task of its own, and the handler
#: holds a reply's bytes (a callback, its arguments, a context) until that task ends: run all
#: in one task, they pile up and set off garbage collections the server never has.
PER_TASK = 64


async def in_tasks(run: Loop, requests: int) -> float:
    """The CPU seconds of ``requests`` requests, run in tasks of :data:`PER_TASK`."""
    spent = 0.0
    for start in range(0, requests, PER_TASK):
        began = time.process_time()
        reported = await asyncio.create_task(run(min(PER_TASK, requests - start)))
        spent += time.process_time() - began if reported is None else reported
    return spent


async def timed_rounds(sides: Mapping[str, Loop], requests: int) -> dict[str, list[float]]:
    """µs of CPU per request of each side, :data:`ROUNDS` rounds interleaved, after a
    warm-up (plan caches, allocator)."""
    for run in sides.values():
        await in_tasks(run, 2000)
    rounds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(ROUNDS):
        for name, run in sides.items():
            rounds[name].append(await in_tasks(run, requests) / requests * 1e6)
    return rounds


def medians(rounds: Mapping[str, list[float]], prefix: str = "") -> dict[str, Any]:
    """Per side its median and rounds, printed, and as the summary's entries."""
    for name, values in rounds.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{prefix}{name}: {statistics.median(values):.2f} µs/request (median of 5: {shown})")
    return {
        name: {"median_us": round(statistics.median(v), 2), "rounds_us": [round(x, 2) for x in v]}
        for name, v in rounds.items()
    }


def round_ratio(rounds: Mapping[str, list[float]], side: str, against: str) -> float:
    """The median of the rounds' ``side`` / ``against``: per round, against the side timed
    beside it, steadier than the µs on a machine whose speed drifts between runs."""
    ratios = [a / b for a, b in zip(rounds[side], rounds[against], strict=True)]
    return round(statistics.median(ratios), 3)


async def _main(
    requests: int, profile: bool, repository: Path = REPOSITORY, models: Sequence[str] = ()
) -> dict[str, Any]:
    server = build_server(repository, grpc_port=0)
    await server.start()
    try:
        service = next(iter(server._services.values()))
        handler = make_handler(
            ModelInferRpc, service.resources, Admission("/probe", 1024), server.limits,
            server.tracing,
        )  # fmt: skip
        handle: Any = handler.unary_unary
        raw = _request_bytes()
        call = _Call()

        def ours(model_raw: bytes) -> Loop:
            async def run(n: int) -> None:
                for _ in range(n):
                    await handle(model_raw, call)

            return run

        async def theirs(n: int) -> None:
            for _ in range(n):
                bare.infer(tpb.ModelInferRequest.FromString(raw)).SerializeToString()

        names = list(models) or ["asyncinfer"]
        sides = {name: ours(_request_bytes(name) if models else raw) for name in names}
        rounds = await timed_rounds({**sides, "bare": theirs}, requests)
        result = medians(rounds)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await sides[names[0]](requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    finally:
        await server.stop()
    result["ratio"] = round_ratio(rounds, names[0], "bare")
    print(f"{names[0]} / bare: {result['ratio']:.3f} (median of the rounds' ratios)")
    return result


def _with_copy_in_threads(repository: Path, name: str, into: Path) -> Path:
    """``repository`` copied under ``into``, with ``NAME_in_threads``: model ``name`` whose
    config also sets ``sync_execute: "thread"``."""
    copy = into / "repository"
    shutil.copytree(repository, copy, symlinks=False)
    source = copy / name
    if not (source / "config.pbtxt").is_file():
        raise SystemExit(f"--in-threads {name}: no {name}/config.pbtxt in {repository}")
    target = copy / f"{name}_in_threads"
    shutil.copytree(source, target)
    config = (target / "config.pbtxt").read_text()
    config = config.replace(f'name: "{name}"', f'name: "{name}_in_threads"', 1)
    config += '\nparameters { key: "sync_execute" value: { string_value: "thread" } }\n'
    (target / "config.pbtxt").write_text(config)
    return copy


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--profile", action="store_true", help="cProfile one more round")
    parser.add_argument("--repository", type=Path, default=REPOSITORY)
    parser.add_argument("--models", default="", help="comma-separated; default: simple")
    parser.add_argument("--in-threads", default="", help="add a sync_execute: thread copy")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as scratch:
        repository = args.repository
        if args.in_threads:
            repository = _with_copy_in_threads(repository, args.in_threads, Path(scratch))
            models.append(f"{args.in_threads}_in_threads")
        result = asyncio.run(_main(args.requests, args.profile, repository, models))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
