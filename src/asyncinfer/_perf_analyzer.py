"""Runs Triton's perf_analyzer against a server, bounded, and parses what it measured.

perf_analyzer comes from the tritonclient 2.51.0 wheel in its own virtual environment,
``.venv-pa`` at the repository root, set up by ``make perf-analyzer``
(scripts/install_perf_analyzer.sh; the PyPI package ``perf-analyzer`` is an empty placeholder
and newer wheels need a newer glibc). The binary links libcudart from that environment's
``nvidia-cuda-runtime-cu12`` package, so it runs with ``LD_LIBRARY_PATH`` pointing there; no GPU
is needed.

Every run is bounded three ways: the measurement window (``-p``), the number of windows
(``--max-trials``) and a subprocess timeout. A run that perf_analyzer reports as unstable is
retried once (this machine is noisy); any other failure raises with its output.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import AsyncInferError

__all__ = [
    "PerfAnalyzerError",
    "PerfAnalyzerFailed",
    "PerfAnalyzerNotFound",
    "PerfAnalyzerResult",
    "PerfAnalyzerRow",
    "find_perf_analyzer",
    "levels",
    "parse_csv",
    "perf_analyzer_env",
    "run_perf_analyzer",
]

ENV_BINARY = "ASYNCINFER_PERF_ANALYZER"
VENV_NAME = ".venv-pa"
INSTALL_HINT = (
    "run `make perf-analyzer` at the repository root (it calls scripts/install_perf_analyzer.sh, "
    f"which sets up {VENV_NAME}/bin/perf_analyzer), or set {ENV_BINARY} to a perf_analyzer "
    "binary that starts on this machine"
)
UNSTABLE = "Failed to obtain stable measurement"


class PerfAnalyzerError(AsyncInferError):
    """perf_analyzer could not be found or did not produce a measurement."""


class PerfAnalyzerNotFound(PerfAnalyzerError):
    """No perf_analyzer binary was found."""


class PerfAnalyzerFailed(PerfAnalyzerError):
    """perf_analyzer ran and failed; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclasses.dataclass(frozen=True)
class PerfAnalyzerRow:
    """One concurrency level as perf_analyzer measured it; latencies in microseconds."""

    concurrency: int
    throughput: float
    p50_us: int
    p90_us: int
    p95_us: int
    p99_us: int
    avg_us: int


@dataclasses.dataclass(frozen=True)
class PerfAnalyzerResult:
    rows: tuple[PerfAnalyzerRow, ...]
    output: str
    attempts: int
    command: tuple[str, ...]

    def row(self, concurrency: int) -> PerfAnalyzerRow:
        for row in self.rows:
            if row.concurrency == concurrency:
                return row
        raise KeyError(f"no row for concurrency {concurrency}; have {self.concurrencies}")

    @property
    def concurrencies(self) -> list[int]:
        return [row.concurrency for row in self.rows]

    @property
    def errors(self) -> list[str]:
        """Lines of the output that report a failed request (empty for a clean run)."""
        return [line for line in self.output.splitlines() if "error" in line.lower()]


def _candidates(start: Path) -> list[Path]:
    return [folder / VENV_NAME / "bin" / "perf_analyzer" for folder in (start, *start.parents)]


def find_perf_analyzer() -> Path:
    """The binary: $ASYNCINFER_PERF_ANALYZER, else .venv-pa above the working directory or
    this package, else perf_analyzer on PATH."""
    configured = os.environ.get(ENV_BINARY)
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise PerfAnalyzerNotFound(f"{ENV_BINARY}={configured} is not an executable file")
        return path
    for path in [*_candidates(Path.cwd()), *_candidates(Path(__file__).resolve().parent)]:
        if os.access(path, os.X_OK):
            return path
    on_path = shutil.which("perf_analyzer")
    if on_path:
        return Path(on_path)
    raise PerfAnalyzerNotFound(f"perf_analyzer not found: {INSTALL_HINT}")


def perf_analyzer_env(binary: Path) -> dict[str, str]:
    """The environment to run ``binary`` in: LD_LIBRARY_PATH gains its venv's libcudart."""
    env = dict(os.environ)
    venv = binary.resolve().parent.parent if binary.is_symlink() else binary.parent.parent
    libs = sorted(venv.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
    if libs:
        previous = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(libs[0]), *([previous] if previous else [])])
    return env


def levels(concurrency: int | tuple[int, int, int]) -> list[int]:
    """The concurrency levels perf_analyzer visits for ``concurrency``."""
    if isinstance(concurrency, int):
        return [concurrency]
    start, end, step = concurrency
    return list(range(start, end + 1, step))


def _range(concurrency: int | tuple[int, int, int]) -> str:
    if isinstance(concurrency, int):
        return str(concurrency)
    start, end, step = concurrency
    return f"{start}:{end}:{step}"


def build_command(
    binary: Path,
    url: str,
    model: str,
    *,
    concurrency: int | tuple[int, int, int],
    shapes: Mapping[str, Sequence[int]],
    measurement_interval_ms: int,
    stability_percent: int,
    max_trials: int,
    extra: Sequence[str],
    protocol: str = "grpc",
) -> list[str]:
    command = [
        str(binary),
        *("-m", model, "-u", url, "-i", protocol),
        *("--concurrency-range", _range(concurrency)),
        *("-p", str(measurement_interval_ms), "-s", str(stability_percent)),
        *("--max-trials", str(max_trials)),
    ]
    for name, shape in shapes.items():
        command += ["--shape", f"{name}:{','.join(str(d) for d in shape)}"]
    return command + list(extra)


def parse_csv(text: str) -> tuple[PerfAnalyzerRow, ...]:
    """Rows of perf_analyzer's ``-f ... --verbose-csv`` CSV file, by concurrency (the file
    itself is ordered by throughput)."""
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        rows.append(
            PerfAnalyzerRow(
                concurrency=int(record["Concurrency"]),
                throughput=float(record["Inferences/Second"]),
                p50_us=int(record["p50 latency"]),
                p90_us=int(record["p90 latency"]),
                p95_us=int(record["p95 latency"]),
                p99_us=int(record["p99 latency"]),
                avg_us=int(record["Avg latency"]),
            )
        )
    return tuple(sorted(rows, key=lambda row: row.concurrency))


async def _attempt(command: list[str], env: dict[str, str], kill_after: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), kill_after)
    except (TimeoutError, asyncio.CancelledError):
        # Never leave a load generator running behind a cancelled test or a timeout.
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace")


async def run_perf_analyzer(
    url: str,
    model: str,
    *,
    concurrency: int | tuple[int, int, int] = 1,
    shapes: Mapping[str, Sequence[int]] | None = None,
    measurement_interval_ms: int = 2000,
    stability_percent: int = 50,
    max_trials: int = 6,
    kill_after: float = 120.0,
    retries_on_unstable: int = 1,
    extra: Sequence[str] = (),
    binary: Path | None = None,
    protocol: str = "grpc",
) -> PerfAnalyzerResult:
    """Run perf_analyzer against ``model`` at ``url`` over ``protocol`` (``grpc`` or ``http``)
    and return its rows.

    ``concurrency`` is one level or a ``(start, end, step)`` range. Raises PerfAnalyzerNotFound
    when there is no binary, PerfAnalyzerFailed when it fails, reports an error, or stays
    unstable after ``retries_on_unstable`` retries, or runs past ``kill_after`` seconds (it is
    killed then; cancelling the call kills it too).
    """
    binary = binary if binary is not None else find_perf_analyzer()
    env = perf_analyzer_env(binary)
    with tempfile.TemporaryDirectory(prefix="perf_analyzer-") as folder:
        command = build_command(
            binary, url, model,
            concurrency=concurrency, shapes=shapes or {},
            measurement_interval_ms=measurement_interval_ms, stability_percent=stability_percent,
            max_trials=max_trials, extra=extra, protocol=protocol,
        )  # fmt: skip
        run = await _run(command, env, Path(folder), kill_after, retries_on_unstable)
        result = _result(*run)
    _check_levels(result, levels(concurrency))
    return result


async def _run(
    command: list[str], env: dict[str, str], folder: Path, kill_after: float, retries: int
) -> tuple[int, str, int, list[str], Path]:
    """Run until a measurement is stable or ``retries`` retries are spent; returns the status,
    output, attempts, command and CSV file of the last attempt."""
    attempts = 0
    while True:
        attempts += 1
        # A CSV file per attempt: a failed attempt must never leave rows for the next to read.
        csv_path = folder / f"attempt-{attempts}.csv"
        attempt = [*command, "-f", str(csv_path), "--verbose-csv"]
        try:
            code, output = await _attempt(attempt, env, kill_after)
        except TimeoutError:
            raise PerfAnalyzerFailed(f"perf_analyzer ran past {kill_after} s: {command}") from None
        # An unstable level fails a single-level run, but ends a range early with exit status
        # 0 and the rows measured so far: look at the output, not the status.
        if UNSTABLE not in output or attempts > retries:
            return code, output, attempts, attempt, csv_path


def _check_levels(result: PerfAnalyzerResult, expected: list[int]) -> None:
    missing = sorted(set(expected) - set(result.concurrencies))
    if missing:
        unstable = [line for line in result.output.splitlines() if UNSTABLE in line]
        raise PerfAnalyzerFailed(
            f"perf_analyzer measured no row for concurrency {missing} after "
            f"{result.attempts} run(s): {unstable[0] if unstable else 'no reason given'}",
            result.output,
        )


def _result(
    code: int, output: str, attempts: int, command: list[str], csv_path: Path
) -> PerfAnalyzerResult:
    tail = "\n".join(output.splitlines()[-15:])
    if code != 0:
        raise PerfAnalyzerFailed(
            f"perf_analyzer exited with {code} after {attempts} run(s):\n{tail}", output
        )
    if not csv_path.exists():
        raise PerfAnalyzerFailed(f"perf_analyzer wrote no CSV:\n{tail}", output)
    result = PerfAnalyzerResult(parse_csv(csv_path.read_text()), output, attempts, tuple(command))
    if not result.rows:
        raise PerfAnalyzerFailed(f"perf_analyzer measured nothing:\n{tail}", output)
    if result.errors:
        raise PerfAnalyzerFailed(f"perf_analyzer reported errors: {result.errors[:3]}", output)
    return result
