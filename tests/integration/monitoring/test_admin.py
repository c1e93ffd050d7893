"""Admin stats over recent windows, and the audit log: an entry for each security-relevant
action (failed logins included), filters, paging, and admins only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import PASSWORD, Actor
from tests.support.fake_connector import FakeConnector


@pytest.fixture(autouse=True)
def fake(runtime: Runtime, tmp_path: Path) -> FakeConnector:
    connector = FakeConnector(tmp_path / "fake.json")
    runtime.connectors = {"michigan": connector}
    return connector


async def job_at(
    runtime: Runtime,
    user_id: str,
    service: Any,
    status: str,
    *,
    created_ago: timedelta,
    completed_ago: timedelta | None = None,
) -> None:
    now = runtime.clock.now()
    panel = await factories.make_panel(runtime, service)
    stored = await factories.make_file(runtime, user_id)
    await factories.make_job(
        runtime,
        user_id=user_id,
        service=service,
        panel=panel,
        files=[stored],
        status=status,
        created_at=now - created_ago,
        completed_at=None if completed_ago is None else now - completed_ago,
        next_step=None,
        next_run_at=None,
    )


async def test_admin_stats_count_by_status_and_recent_windows_per_service(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    a = await factories.make_service(runtime, slug="svc-a")
    b = await factories.make_service(runtime, slug="svc-b")
    m = timedelta(minutes=1)
    for _ in range(2):
        await job_at(runtime, alice.id, a, "completed", created_ago=35 * m, completed_ago=30 * m)
    await job_at(runtime, alice.id, a, "failed", created_ago=125 * m, completed_ago=120 * m)
    await job_at(
        runtime, alice.id, a, "completed", created_ago=3 * 1440 * m, completed_ago=3 * 1440 * m
    )
    await job_at(
        runtime, alice.id, a, "completed", created_ago=10 * 1440 * m, completed_ago=10 * 1440 * m
    )
    await job_at(runtime, alice.id, b, "failed", created_ago=15 * m, completed_ago=10 * m)
    await job_at(runtime, alice.id, b, "running", created_ago=1 * m)

    response = await client.get("/api/v1/admin/stats", headers=admin.headers)

    assert response.status_code == 200
    stats = response.json()
    assert stats["by_status"]["completed"] == 4
    assert stats["by_status"]["failed"] == 2
    assert stats["by_status"]["running"] == 1
    assert stats["by_status"]["pending"] == 0
    hour, day, week = (stats["windows"][k] for k in ("1h", "24h", "7d"))
    assert (hour["submitted"], hour["completed"], hour["failed"]) == (4, 2, 1)
    assert hour["processing_rate_per_hour"] == 2.0
    assert hour["failure_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (day["submitted"], day["completed"], day["failed"]) == (5, 2, 2)
    assert day["processing_rate_per_hour"] == pytest.approx(2 / 24, abs=1e-4)
    assert day["failure_rate"] == 0.5
    assert (week["submitted"], week["completed"], week["failed"]) == (6, 3, 2)

    svc_a, svc_b = stats["services"]["svc-a"], stats["services"]["svc-b"]
    assert svc_a["by_status"]["completed"] == 4
    assert svc_a["windows"]["1h"]["failure_rate"] == 0.0
    assert svc_a["windows"]["24h"]["failed"] == 1
    assert svc_b["windows"]["1h"] == {
        "submitted": 2,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
        "processing_rate_per_hour": 0.0,
        "failure_rate": 1.0,
    }
    assert svc_b["by_status"]["running"] == 1


async def test_admin_endpoints_are_for_admins_only(client: httpx.AsyncClient, alice: Actor) -> None:
    for path in ("/api/v1/admin/stats", "/api/v1/admin/audit-log"):
        assert (await client.get(path)).status_code == 401
        denied = await client.get(path, headers=alice.headers)
        assert denied.status_code == 403
        assert denied.headers["content-type"] == "application/problem+json"


async def audit(client: httpx.AsyncClient, admin: Actor, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/admin/audit-log", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_security_relevant_actions_are_audited(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor, clock: FakeClock
) -> None:
    start = clock.now()
    login = "/api/v1/auth/login"
    failed = await client.post(
        login,
        json={"username": "alice", "password": "not it"},
        headers={"X-Request-ID": "req-failed-login-1"},
    )
    assert failed.status_code == 401
    unknown = await client.post(login, json={"username": "nobody", "password": "x"})
    assert unknown.status_code == 401
    assert (
        await client.post(login, json={"username": "alice", "password": PASSWORD})
    ).status_code == 200
    clock.advance(5)

    created = await client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=alice.headers)
    assert created.status_code == 201
    token_id = created.json()["id"]
    revoked = await client.delete(f"/api/v1/auth/tokens/{token_id}", headers=alice.headers)
    assert revoked.status_code == 204

    carol = await client.post(
        "/api/v1/users",
        json={"username": "carol", "password": "carol's passphrase", "email": "c@example.org"},
        headers=admin.headers,
    )
    assert carol.status_code == 201
    carol_id = carol.json()["id"]
    promoted = await client.patch(
        f"/api/v1/users/{carol_id}", json={"role": "admin"}, headers=admin.headers
    )
    assert promoted.status_code == 200

    service = await client.post(
        "/api/v1/services",
        json={
            "name": "Michigan",
            "api_type": "michigan",
            "base_url": "https://imputationserver.sph.umich.edu",
            "credential": "platform-secret-credential-1",
        },
        headers=admin.headers,
    )
    assert service.status_code == 201, service.text
    service_id = service.json()["id"]
    edited = await client.patch(
        f"/api/v1/services/{service_id}", json={"location": "Online"}, headers=admin.headers
    )
    assert edited.status_code == 200
    own = await client.put(
        f"/api/v1/services/{service_id}/credential",
        json={"credential": "alice-own-credential-2"},
        headers=alice.headers,
    )
    assert own.status_code == 200, own.text
    removed = await client.delete(
        f"/api/v1/services/{service_id}/credential", headers=alice.headers
    )
    assert removed.status_code == 204
    svc = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, svc)
    stored = await factories.make_file(runtime, alice.id)
    job = await factories.make_job(
        runtime, user_id=alice.id, service=svc, panel=panel, files=[stored]
    )
    own_cancel = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
    assert own_cancel.status_code == 200
    job2 = await factories.make_job(
        runtime, user_id=alice.id, service=svc, panel=panel, files=[stored]
    )
    by_admin = await client.post(f"/api/v1/jobs/{job2.id}/cancel", headers=admin.headers)
    assert by_admin.status_code == 200
    # Deleting someone else's finished job is audited too (alice's first, cancelled above).
    deleted = await client.delete(f"/api/v1/jobs/{job.id}", headers=admin.headers)
    assert deleted.status_code == 204
    deactivated = await client.delete(f"/api/v1/services/{service_id}", headers=admin.headers)
    assert deactivated.status_code == 204

    entries = await audit(client, admin, limit=100)
    actions = [(e["action"], e["outcome"], e["actor"]) for e in reversed(entries)]
    assert actions == [
        ("login", "failure", "alice"),
        ("login", "failure", "nobody"),
        ("login", "success", "alice"),
        ("token_created", "success", "alice"),
        ("token_revoked", "success", "alice"),
        ("user_created", "success", "admin"),
        ("role_changed", "success", "admin"),
        ("service_created", "success", "admin"),
        ("service_updated", "success", "admin"),
        ("credential_set", "success", "alice"),
        ("credential_deleted", "success", "alice"),
        ("job_cancelled_by_admin", "success", "admin"),  # alice's own cancel is not audited
        ("job_deleted_by_admin", "success", "admin"),
        ("service_deactivated", "success", "admin"),
    ]
    first = entries[-1]
    assert first["client_ip"] == "127.0.0.1"
    assert first["request_id"] == "req-failed-login-1"
    assert first["details"] == {"reason": "invalid_credentials"}
    role = next(e for e in entries if e["action"] == "role_changed")
    assert (role["target_type"], role["target_id"]) == ("user", carol_id)
    assert role["details"]["role_before"] == "user"
    assert role["details"]["role"] == "admin"
    cancel = next(e for e in entries if e["action"] == "job_cancelled_by_admin")
    assert cancel["target_id"] == job2.id
    assert cancel["details"] == {"owner_id": alice.id}
    text = str(entries)
    for secret in ("not it", PASSWORD, "platform-secret-credential-1", "alice-own-credential-2"):
        assert secret not in text
    assert created.json()["token"] not in text

    # Filters: by action and outcome, actor (name or id), target, time range; paging.
    failures = await audit(client, admin, action="login", outcome="failure")
    assert [e["actor"] for e in failures] == ["nobody", "alice"]
    by_alice = await audit(client, admin, actor=alice.id)
    assert {e["action"] for e in by_alice} == {
        "login",
        "token_created",
        "token_revoked",
        "credential_set",
        "credential_deleted",
    }
    on_service = await audit(client, admin, target=f"service:{service_id}")
    assert [e["action"] for e in on_service] == [
        "service_deactivated",
        "credential_deleted",
        "credential_set",
        "service_updated",
        "service_created",
    ]
    early = await audit(client, admin, until=(start + timedelta(seconds=1)).isoformat())
    assert [e["action"] for e in early] == ["login", "login", "login"]
    late = await audit(client, admin, since=(start + timedelta(seconds=1)).isoformat())
    assert len(late) == len(entries) - 3
    page = await client.get(
        "/api/v1/admin/audit-log", params={"limit": 2, "offset": 1}, headers=admin.headers
    )
    body = page.json()
    assert body["total"] == len(entries)
    assert [e["id"] for e in body["items"]] == [e["id"] for e in entries[1:3]]


async def test_password_changes_are_audited_whether_they_succeed_or_not(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    change = "/api/v1/auth/change-password"
    wrong = await client.post(
        change,
        json={"current_password": "not it at all", "new_password": "a new long password"},
        headers=alice.headers,
    )
    right = await client.post(
        change,
        json={"current_password": PASSWORD, "new_password": "a new long password"},
        headers=alice.headers,
    )
    assert (wrong.status_code, right.status_code) == (403, 204)

    entries = await audit(client, admin, action="password_changed")

    assert [(e["actor"], e["outcome"]) for e in entries] == [
        ("alice", "success"),
        ("alice", "failure"),
    ]
    assert entries[1]["details"] == {"reason": "wrong_password"}
    assert "a new long password" not in str(entries)
