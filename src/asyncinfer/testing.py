"""Helpers for users' own tests: a server in the test's event loop, or in a child process.

async with running(server) as target:      # "127.0.0.1:PORT", port chosen at run time
    ...

with ServerProcess([sys.executable, "server.py", "--port", "0"]) as proc:
    proc.address, proc.worker_pids
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Self

from .errors import UsageError
from .server import Server

__all__ = ["ServerProcess", "running"]

_READY = re.compile(r"asyncinfer: (?:worker (\d+) )?\(pid (\d+)\) serving on (\S+)")
_METRICS = re.compile(r"asyncinfer: metrics on (\S+)")
_HTTP = re.compile(r"asyncinfer: HTTP on (\S+)")


@contextlib.asynccontextmanager
async def running(server: Server, *, grace: float = 0.0) -> AsyncIterator[str]:
    """Start ``server`` (on its configured port; 0 picks one) and yield its address."""
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop(grace)


class ServerProcess:
    """A server command run as a child process; ready once it printed its serving line(s).

    Output is collected in ``lines`` by a reader thread; ``worker_pids`` maps worker index to
    the pid of its latest incarnation (restarted workers announce themselves again).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        workers: int = 1,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.workers = workers
        self.timeout = timeout
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.lines: list[str] = []
        self.worker_pids: dict[int, int] = {}
        self.address = ""
        #: The metrics URL the server printed (its own, or the supervisor's with workers).
        self.metrics_url = ""
        #: The HTTP front end's URL a single-process inference server printed.
        self.http_url = ""
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise UsageError("the server process is not started")
        return self._process.pid

    def start(self) -> Self:
        self._process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda: len(self.worker_pids) >= self.workers, "to serve")
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                if match := _READY.search(line):
                    index, pid, self.address = match.groups()
                    self.worker_pids[int(index or 0)] = int(pid)
                elif match := _METRICS.search(line):
                    self.metrics_url = match.group(1)
                elif match := _HTTP.search(line):
                    self.http_url = match.group(1)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: object, what: str, timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds; fail with the output so far if it does not."""
        assert callable(predicate)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.returncode is not None:
                    output = "\n".join(self.lines[-40:])
                    raise TimeoutError(f"server did not get {what}: {self.argv}\n{output}")
                self._changed.wait(min(remaining, 0.1))

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout)  # EOF once the process and its workers are gone
        if self._process.stdout is not None:
            self._process.stdout.close()
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
