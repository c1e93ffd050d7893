"""Worker test fixtures: a runtime wired to the fake connector, and job rows to work on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import User
from imputehub.runtime import Runtime, build_runtime
from tests.support.fake_connector import FakeConnector


@pytest.fixture
def fake(tmp_path: Path) -> FakeConnector:
    return FakeConnector(tmp_path / "fake.json")


@contextlib.asynccontextmanager
async def make_hub(
    settings: Settings, clock: FakeClock, fake: FakeConnector, **overrides: Any
) -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        settings.model_copy(update=overrides), clock=clock, connectors={"michigan": fake}
    )
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, fake: FakeConnector) -> AsyncIterator[Runtime]:
    async with make_hub(settings, clock, fake) as runtime:
        yield runtime


@pytest.fixture
async def user_id(hub: Runtime) -> str:
    """The owner of the test jobs; never logs in, so no (slow) password hash is needed."""
    now = hub.clock.now()
    async with hub.db.session() as session:
        user = User(
            username="carol", password_hash="!", role="user", created_at=now, updated_at=now
        )
        session.add(user)
    return user.id
