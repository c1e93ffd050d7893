"""First-run setup, liveness, and the shape of errors."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from imputehub.db.models import WorkerHeartbeat
from imputehub.runtime import Runtime
from tests.support.api import Actor

SETUP = "/api/v1/setup"


async def test_setup_creates_the_first_admin_once(client: httpx.AsyncClient) -> None:
    response = await client.post(
        SETUP, json={"username": "root", "password": "first admin passphrase"}
    )
    assert response.status_code == 201
    assert response.json()["role"] == "admin"
    login = await client.post(
        "/api/v1/auth/login", json={"username": "root", "password": "first admin passphrase"}
    )
    assert login.status_code == 200
    again = await client.post(
        SETUP, json={"username": "intruder", "password": "another passphrase"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_set_up"
    intruder = await client.post(
        "/api/v1/auth/login", json={"username": "intruder", "password": "another passphrase"}
    )
    assert intruder.status_code == 401


async def test_setup_is_closed_once_any_user_exists(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await client.post(SETUP, json={"username": "root", "password": "passphrase!"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"username": "root", "password": "short"},
        {"username": "r", "password": "long enough pw"},
        {"username": "root", "password": "long enough pw", "role": "user"},
        {"username": "root"},
    ],
)
async def test_bad_setup_requests_leave_the_hub_unconfigured(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    assert (await client.post(SETUP, json=body)).status_code == 422
    ok = await client.post(SETUP, json={"username": "root", "password": "long enough pw"})
    assert ok.status_code == 201


async def test_health_reports_database_and_no_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "workers": {"alive": 0, "last_seen_at": None},
    }


async def test_health_counts_recent_workers_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        session.add(
            WorkerHeartbeat(worker_id="w1", hostname="h", pid=1, started_at=now, last_seen_at=now)
        )
        session.add(
            WorkerHeartbeat(
                worker_id="w-old",
                hostname="h",
                pid=2,
                started_at=now - timedelta(hours=2),
                last_seen_at=now - timedelta(hours=1),
            )
        )
    body = (await client.get("/api/v1/health")).json()
    assert body["status"] == "ok"
    assert body["workers"]["alive"] == 1


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    wrong_method = await client.put("/api/v1/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/auth/login" in response.json()["paths"]
