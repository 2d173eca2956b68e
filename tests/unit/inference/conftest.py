"""Fixtures of the inference unit tests: a registered system shared-memory region."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import pytest
import tritonclient.utils.shared_memory as tshm

from asyncinfer.inference.shared_memory import SharedMemory

KEY = f"/asyncinfer_unit_{os.getpid()}"


@pytest.fixture
def shared() -> Iterator[SharedMemory]:
    """Shared memory with one page registered as region ``r``."""
    handle = tshm.create_shared_memory_region("unit", KEY, mmap.PAGESIZE)
    shared = SharedMemory(allow_client_shm=True)
    shared.system.register("r", KEY, 0, mmap.PAGESIZE)
    yield shared
    shared.close()
    tshm.destroy_shared_memory_region(handle)
