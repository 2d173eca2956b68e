"""Runs protoc (grpcio-tools) over a set of sources in a child process; its errors become a
ConfigError that names the file and line.

A child process, not ``grpc_tools.protoc.main`` in this one: protoc writes its errors to the
C++ standard error, which a Python caller cannot capture, and importing ``grpc_tools.protoc``
installs import hooks in ``sys.meta_path`` that a server does not want.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ._sources import ProtoSources, library_descriptor_set, well_known_root

__all__ = ["run_protoc"]

_LOG = logging.getLogger(__name__)
_TIMEOUT = 120.0
# protoc's diagnostics: "name.proto:LINE:COLUMN: message" (the name relative to its root).
_LOCATED = re.compile(r"^(?P<name>[^:\n]+\.proto):(?P<where>\d+:\d+:)", re.MULTILINE)


def run_protoc(
    sources: ProtoSources, outputs: Sequence[str], out_dir: Path, *, plugins: Sequence[str] = ()
) -> None:
    """Compile ``sources`` with the protoc ``outputs`` (e.g. ``--python_out``) into ``out_dir``;
    ``plugins`` are ``NAME=EXECUTABLE`` pairs for ``--plugin``."""
    with tempfile.TemporaryDirectory(prefix="asyncinfer-protoc-") as scratch:
        library = Path(scratch) / "asyncinfer-library.pb"
        library.write_bytes(library_descriptor_set())
        argv = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{root}" for root in sources.roots),
            f"-I{well_known_root()}",
            f"--descriptor_set_in={library}",
            *(f"--plugin={plugin}" for plugin in plugins),
            *(f"{option}={out_dir}" for option in outputs),
            *(file.name for file in sources.files),
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"protoc did not finish compiling {sources.main.path} in {_TIMEOUT:.0f}s"
            ) from None
    report = _located(done.stderr.strip() or done.stdout.strip(), sources)
    if done.returncode != 0:
        raise ConfigError(f"protoc could not compile {sources.main.path}:\n{report}")
    for line in report.splitlines():
        if "warning" in line:  # plugins also print progress lines; only warnings matter
            _LOG.warning("protoc on %s: %s", sources.main.path, line)


def _located(report: str, sources: ProtoSources) -> str:
    """protoc's report with each file named by its path on disk, not its name under a root."""
    paths = {file.name: str(file.path) for file in sources.files}

    def where(match: re.Match[str]) -> str:
        return f"{paths.get(match['name'], match['name'])}:{match['where']}"

    return _LOCATED.sub(where, report)
