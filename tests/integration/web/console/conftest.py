"""Console page tests: one database (the use cases' queries are tested on both under the
API), an admin and a user signed in through the form."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import databases
from tests.support.api import Actor
from tests.support.web import sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return databases.sqlite_with_schema(tmp_path)


@pytest.fixture
async def admin_csrf(client: httpx.AsyncClient, admin: Actor) -> str:
    """`client` signed in as the admin; the CSRF token for its forms."""
    return await sign_in(client, admin.username)
