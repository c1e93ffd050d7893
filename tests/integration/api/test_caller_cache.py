"""Reads remember who a token stands for a few seconds; revocation still shuts them out.

Changes made through this process (the API, the worker) end the memory at once; a change
the process cannot see (another process, plain SQL) within the cache's time to live.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from imputehub.accounts.caller_cache import CallerCache
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import PASSWORD, Actor


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(app: FastAPI) -> Ticks:
    ticks = Ticks()
    app.state.caller_cache = CallerCache(ttl=5.0, monotonic=ticks)
    return ticks


async def api_token(client: httpx.AsyncClient, actor: Actor) -> dict[str, str]:
    created = await client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=actor.headers)
    return {"Authorization": f"Bearer {created.json()['token']}"}


async def test_an_admin_deactivating_an_account_shuts_out_its_cached_reads_at_once(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, ticks: Ticks
) -> None:
    bearer = await api_token(client, alice)
    for headers in (alice.headers, bearer):  # both kinds of token, remembered
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    response = await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    for headers in (alice.headers, bearer):
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_a_changed_password_ends_old_access_tokens_reads_at_once(
    client: httpx.AsyncClient, alice: Actor, ticks: Ticks
) -> None:
    assert (await client.get("/api/v1/jobs", headers=alice.headers)).status_code == 200
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=alice.headers,
    )
    assert response.status_code == 204
    answer = await client.get("/api/v1/jobs", headers=alice.headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "token_revoked"


@pytest.mark.parametrize(
    ("method", "path", "body", "later", "status"),
    [
        # A read may come from memory: the change is seen once the time to live has passed.
        pytest.param("GET", "/api/v1/auth/me", None, 4.0, 200, id="read-still-remembered"),
        pytest.param("GET", "/api/v1/auth/me", None, 6.0, 401, id="read-after-the-ttl"),
        # A write never uses the memory: refused at once.
        pytest.param("POST", "/api/v1/auth/tokens", {"name": "y"}, 0.0, 401, id="write-at-once"),
    ],
)
async def test_a_change_made_elsewhere_reaches_reads_once_the_memory_expires_and_writes_at_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    ticks: Ticks,
    method: str,
    path: str,
    body: dict[str, str] | None,
    later: float,
    status: int,
) -> None:
    bearer = await api_token(client, alice)
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 200
    # As another process would: plain SQL, past this process's sessions.
    async with runtime.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM api_tokens WHERE user_id = :id"), {"id": alice.id})
    ticks.now += later
    response = await client.request(method, path, json=body, headers=bearer)
    assert response.status_code == status


async def test_remembered_callers_still_see_only_their_own_jobs(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor, ticks: Ticks
) -> None:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    files = [await factories.make_file(runtime, alice.id) for _ in range(2)]
    job = await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=files
    )
    for _ in range(2):  # the second time, both callers come from memory
        progress = await client.get(f"/api/v1/jobs/{job.id}/progress", headers=alice.headers)
        assert progress.json()["status"] == "pending"
        shown = await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)
        assert [f["id"] for f in shown.json()["input_files"]] == [f.id for f in files]
        for path in (f"/api/v1/jobs/{job.id}/progress", f"/api/v1/jobs/{job.id}"):
            assert (await client.get(path, headers=bob.headers)).status_code == 404
