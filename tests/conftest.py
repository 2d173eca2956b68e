from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asyncinfer.testing import running

from .services import TrackedResources, build


@pytest.fixture
def resources() -> TrackedResources:
    return TrackedResources()


@pytest.fixture
async def target(resources: TrackedResources) -> AsyncIterator[str]:
    """A ping server in the test's own event loop; yields its address."""
    async with running(build(resources)) as address:
        yield address


@pytest.fixture(autouse=True)
def _fresh_internal_error_log() -> None:
    """Each test sees its own first internal error logged (the log is throttled per cause)."""
    from asyncinfer import errors

    errors._INTERNAL_LOG.causes.clear()
