"""Renders deploy/nginx's templates for N asyncinfer servers, and runs an nginx from them.

For production, render the site file and include it from your nginx.conf:

    python deploy/nginx/nginx_lb.py --grpc-listen 0.0.0.0:8001 \\
        --grpc-backend 10.0.0.11:8001 --grpc-backend 10.0.0.12:8001 \\
        --http-listen 0.0.0.0:8000 --http-backend 10.0.0.11:8000 --http-backend 10.0.0.12:8000 \\
        > /etc/nginx/conf.d/asyncinfer.conf

Tests, example 07 and bench/scale_out.py run a private nginx on free loopback ports:

    with Nginx(["127.0.0.1:8101", "127.0.0.1:8102"], folder=tmp) as lb:
        lb.grpc_address                 # "127.0.0.1:PORT"
        lb.upstream_counts()            # {"127.0.0.1:8101": 120, ...} from nginx's access log

Standard library only, so that it runs with any Python next to any nginx.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Self

HERE = Path(__file__).resolve().parent
GRPC_TEMPLATE = HERE / "asyncinfer-grpc.conf.template"
HTTP_TEMPLATE = HERE / "asyncinfer-http.conf.template"
MAIN_TEMPLATE = HERE / "nginx.conf.template"
INSTALL_SCRIPT = HERE.parent.parent / "scripts" / "install_nginx.sh"

_FIELD = re.compile(r"@([A-Z_]+)@")
_RECORD = re.compile(r'(\w+)=("([^"]*)"|\S*)')


class NginxError(RuntimeError):
    """nginx is missing, did not start, or a template could not be rendered."""


def render(template: Path, **fields: str) -> str:
    """``template`` with every ``@NAME@`` replaced by ``fields["NAME"]``; all must be given."""
    text = template.read_text()
    missing = sorted(set(_FIELD.findall(text)) - set(fields))
    if missing:
        raise NginxError(f"{template.name} needs {missing}")
    return _FIELD.sub(lambda match: fields[match.group(1)], text)


def server_lines(
    backends: Sequence[str],
    *,
    down: Collection[str] = (),
    max_fails: int = 1,
    fail_timeout: float = 5.0,
) -> str:
    """The ``server`` lines of an upstream block: passive health checks on every backend.

    ``max_fails`` failed connection attempts within ``fail_timeout`` seconds take a backend out
    of rotation for ``fail_timeout`` seconds; then nginx tries it again with a real request.
    Backends in ``down`` are kept in the list but get no calls (drained for a restart).
    """
    if not backends:
        raise NginxError("an upstream needs at least one backend HOST:PORT")
    unknown = sorted(set(down) - set(backends))
    if unknown:
        raise NginxError(f"cannot mark {unknown} down: the backends are {list(backends)}")
    return "\n    ".join(
        f"server {backend} max_fails={max_fails} fail_timeout={fail_timeout:g}s"
        + (" down;" if backend in down else ";")
        for backend in backends
    )


def site(
    grpc_backends: Sequence[str],
    grpc_listen: str,
    *,
    http_backends: Sequence[str] = (),
    http_listen: str | None = None,
    access_log: str = "/var/log/nginx/asyncinfer.log",
    fail_timeout: float = 5.0,
    down: Collection[str] = (),
) -> str:
    """The http{}-level configuration: gRPC load balancing, and HTTP when backends are given."""
    parts = [
        render(
            GRPC_TEMPLATE,
            GRPC_SERVERS=server_lines(grpc_backends, down=down, fail_timeout=fail_timeout),
            GRPC_LISTEN=grpc_listen,
            ACCESS_LOG=access_log,
        )
    ]
    if http_backends:
        if http_listen is None:
            raise NginxError("HTTP backends need an http_listen address")
        parts.append(
            render(
                HTTP_TEMPLATE,
                HTTP_SERVERS=server_lines(http_backends, fail_timeout=fail_timeout),
                HTTP_LISTEN=http_listen,
                ACCESS_LOG=access_log,
            )
        )
    return "\n".join(parts)


def nginx_binary() -> str:
    """The nginx executable; a clear error naming the install script when there is none."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        raise NginxError(f"nginx is not installed: run `bash {INSTALL_SCRIPT}` (Debian's nginx)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Record:
    """One access-log line: the backends nginx tried, in order, and what each answered."""

    upstreams: tuple[str, ...]
    upstream_statuses: tuple[str, ...]
    status: int
    grpc_status: str
    sequence: str

    @property
    def answered_by(self) -> str:
        """The backend whose answer the client got; "" when none did (nginx answered)."""
        if self.upstreams and self.upstream_statuses[-1:] == ("200",):
            return self.upstreams[-1]
        return ""


def _tried(value: str) -> tuple[str, ...]:
    # nginx separates the servers of one upstream with ", " and internal redirects with " : ".
    return tuple(part.strip() for part in re.split(r",\s|\s:\s", value) if part.strip())


def parse_record(line: str) -> Record:
    """A line of the access log the templates' ``log_format`` writes."""
    fields = {key: quoted if value.startswith('"') else value
              for key, value, quoted in _RECORD.findall(line)}  # fmt: skip
    # nginx logs an empty variable as "-".
    fields = {key: "" if value == "-" else value for key, value in fields.items()}
    return Record(
        upstreams=_tried(fields.get("upstream", "")),
        upstream_statuses=_tried(fields.get("upstream_status", "")),
        status=int(fields.get("status") or 0),
        grpc_status=fields.get("grpc_status", ""),
        sequence=fields.get("sequence", ""),
    )


class Nginx:
    """A private nginx balancing ``grpc_backends`` on a free loopback port, from ``folder``."""

    def __init__(
        self,
        grpc_backends: Sequence[str],
        *,
        folder: Path,
        host: str = "127.0.0.1",
        fail_timeout: float = 5.0,
        start_timeout: float = 15.0,
    ) -> None:
        self.grpc_backends = list(grpc_backends)
        self.folder = folder
        self.host = host
        self.fail_timeout = fail_timeout
        self.start_timeout = start_timeout
        self.port = 0
        #: Backends taken out of rotation (``drain``), still listed in the config.
        self.down: set[str] = set()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def config(self, port: int) -> str:
        sites = site(
            self.grpc_backends,
            f"{self.host}:{port}",
            access_log=str(self.access_log),
            fail_timeout=self.fail_timeout,
            down=self.down,
        )
        return render(MAIN_TEMPLATE, PREFIX=str(self.folder), SITES=sites)

    def start(self) -> Self:
        """Start nginx on a free port (a few tries: a free port can be taken before we bind)."""
        binary = nginx_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port(self.host)
            conf = self.folder / "nginx.conf"
            conf.write_text(self.config(self.port))
            self._process = subprocess.Popen(
                [binary, "-p", str(self.folder), "-c", str(conf), "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._wait_listening():
                return self
            if "Address already in use" not in self._error_tail():
                break
        raise NginxError(f"nginx did not start; its error log says:\n{self._error_tail()}")

    def _wait_listening(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def _error_tail(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-20:])
        return ""

    def drain(self, backend: str, timeout: float = 30.0) -> None:
        """Take ``backend`` out of rotation; returns once nginx sends it nothing any more.

        The way to restart a backend behind nginx without failing a call: nginx cannot retry
        a call that reached a backend, and a gRPC server that has begun to stop cancels the
        calls that still arrive on connections nginx keeps open to it. So: drain, stop the
        backend (SIGTERM: it finishes what it has), start it again, ``restore`` it.
        """
        self.down.add(backend)
        self.reload(timeout)

    def restore(self, backend: str, timeout: float = 30.0) -> None:
        """Put a drained ``backend`` back into rotation."""
        self.down.discard(backend)
        self.reload(timeout)

    def reload(self, timeout: float = 30.0) -> None:
        """Apply the current config (SIGHUP); returns when the old workers have exited.

        Old workers finish their calls in flight first, so once they are gone every call
        goes through the new configuration.
        """
        if self._process is None or self._process.poll() is not None:
            raise NginxError("nginx is not running")
        (self.folder / "nginx.conf").write_text(self.config(self.port))
        old = _children(self._process.pid)
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = _children(self._process.pid)
            if now and not now & old:
                return
            time.sleep(0.02)
        raise NginxError(f"nginx did not reload within {timeout:g}s:\n{self._error_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGQUIT: finish the calls in flight), SIGKILL after ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def records(self) -> list[Record]:
        """Every call nginx has logged so far."""
        with contextlib.suppress(FileNotFoundError):
            return [parse_record(line) for line in self.access_log.read_text().splitlines()]
        return []

    def upstream_counts(self) -> dict[str, int]:
        """Calls answered per backend ("" for calls nginx answered itself)."""
        return dict(sorted(collections.Counter(r.answered_by for r in self.records()).items()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes (nginx's workers), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(child) for child in text.split()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render asyncinfer's nginx site configuration.")
    parser.add_argument("--grpc-listen", default="0.0.0.0:8001")
    parser.add_argument("--grpc-backend", action="append", required=True, metavar="HOST:PORT")
    parser.add_argument("--http-listen", default="0.0.0.0:8000")
    parser.add_argument("--http-backend", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--access-log", default="/var/log/nginx/asyncinfer.log")
    parser.add_argument("--fail-timeout", type=float, default=5.0, help="seconds")
    args = parser.parse_args(argv)
    sys.stdout.write(
        site(
            args.grpc_backend,
            args.grpc_listen,
            http_backends=args.http_backend,
            http_listen=args.http_listen,
            access_log=args.access_log,
            fail_timeout=args.fail_timeout,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
