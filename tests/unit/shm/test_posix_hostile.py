"""Regression tests: a hostile client of system shared memory cannot crash the server or reach
what is not its own (a shrunk region, a symlink/directory/socket/FIFO key, fd exhaustion)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import tritonclient.utils.shared_memory as tshm

from asyncinfer.errors import Internal, InvalidArgument, ResourceExhausted
from asyncinfer.shm.posix import SystemShmRegistry, default_max_regions

SIZE = 1 << 20


@pytest.fixture
def key() -> Iterator[str]:
    name = f"/asyncinfer_hostile_{os.getpid()}"
    handle = tshm.create_shared_memory_region("h", name, SIZE)
    yield name
    tshm.destroy_shared_memory_region(handle)


def test_a_region_shrunk_under_a_request_is_an_error_not_sigbus(key: str) -> None:
    """A client ftruncates its region after registering (and after a lease was checked): every
    read and write afterwards is INVALID_ARGUMENT, and this process is still alive. On main the
    region was mmapped and this read killed the process with SIGBUS, so it runs in a child."""
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from asyncinfer.errors import InvalidArgument
        from asyncinfer.shm.posix import SystemShmRegistry
        registry = SystemShmRegistry()
        registry.register("r", {key!r}, 0, {SIZE})
        lease = registry.lease("r", 0, {SIZE})       # checked while the region was whole
        fd = os.open("/dev/shm{key}", os.O_RDWR)
        os.ftruncate(fd, 4096)                          # the client shrinks it
        for attempt in (lambda: lease.array(np.uint8, ({SIZE},)),
                        lambda: lease.write(b"x" * {SIZE}),
                        lambda: registry.lease("r", 0, 16)):
            try:
                attempt()
            except InvalidArgument as exc:
                print("refused:", exc.message)
        os.ftruncate(fd, {SIZE})
        lease.array(np.uint8, ({SIZE},))                # whole again: served again
        lease.release()
        registry.close()
        print("alive")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    lines = done.stdout.splitlines()
    refusal = (
        f"refused: shared memory region 'r': its key '{key}' now holds 4096 bytes, less than "
        f"the registered offset + byte_size {SIZE}"
    )
    assert lines.count(refusal) == 3
    assert lines[-1] == "alive"


def test_a_short_read_after_the_size_check_is_an_error(key: str) -> None:
    registry = SystemShmRegistry()
    registry.register("r", key, 0, SIZE)
    lease = registry.lease("r", 0, SIZE)
    region = registry._regions["r"]
    # The client shrinks it between the size check and the read: simulate by skipping the check.
    region.check_size = lambda: None  # type: ignore[method-assign]
    os.truncate(f"/dev/shm{key}", 1000)
    with pytest.raises(InvalidArgument, match="the region ended after 1000 of the"):
        lease.view()
    lease.release()
    registry.close()


@pytest.mark.parametrize("kind", ["symlink", "directory", "socket", "fifo"])
def test_only_regular_files_are_registered(key: str, kind: str) -> None:
    name = f"asyncinfer_not_regular_{os.getpid()}_{kind}"
    path = f"/dev/shm/{name}"
    sock = None
    if kind == "symlink":
        os.symlink(f"/dev/shm{key}", path)  # even to a valid region of the same user
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    else:
        os.mkfifo(path)
    registry = SystemShmRegistry()
    try:
        # A symlink, a directory or a socket does not open (O_NOFOLLOW, O_RDWR): Triton's
        # INTERNAL "Unable to open"; a FIFO opens (O_NONBLOCK) and fstat refuses it.
        with pytest.raises((Internal, InvalidArgument)) as refused:
            registry.register("r", "/" + name, 0, 64)
        assert f"'/{name}'" in refused.value.message
        assert "only regular files in /dev/shm are opened" in refused.value.message
        if kind != "fifo":
            assert refused.value.message.startswith("Unable to open shared memory region: '")
        assert registry.statistics()["regions"] == 0
    finally:
        if sock is not None:
            sock.close()
        if kind == "directory":
            os.rmdir(path)
        else:
            os.unlink(path)


def test_another_users_object_is_refused(key: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    name = f"asyncinfer_foreign_{os.getpid()}"
    path = f"/dev/shm/{name}"
    with open(path, "wb") as f:
        f.truncate(4096)
    os.chown(path, 65534, 65534)
    try:
        with pytest.raises(InvalidArgument, match="belongs to uid 65534, not to this server's"):
            SystemShmRegistry().register("r", "/" + name, 0, 64)
    finally:
        os.unlink(path)


def test_region_count_is_bounded_with_one_descriptor_each(key: str) -> None:
    registry = SystemShmRegistry(max_regions=50)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(50):
        registry.register(f"r{i}", key, 0, 4096)
    assert len(os.listdir("/proc/self/fd")) - before == 50  # one descriptor per region
    with pytest.raises(ResourceExhausted, match="at most 50 system shared-memory regions"):
        registry.register("one-more", key, 0, 4096)
    registry.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert 16 <= default_max_regions() <= 4096


def test_descriptor_exhaustion_is_resource_exhausted(key: str) -> None:
    """With the descriptor limit reached anyway, register answers RESOURCE_EXHAUSTED (it was
    UNKNOWN: OSError EMFILE). Runs in a child with a small RLIMIT_NOFILE."""
    script = textwrap.dedent(
        f"""
        import resource
        from asyncinfer.errors import ResourceExhausted
        from asyncinfer.shm.posix import SystemShmRegistry
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        registry = SystemShmRegistry(max_regions=10_000)
        try:
            for i in range(1000):
                registry.register(f"r{{i}}", {key!r}, 0, 4096)
        except ResourceExhausted as exc:
            print("refused:", exc.message)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the server has no file descriptor left (RLIMIT_NOFILE)" in done.stdout
