"""The services API: discovery, admin registration and edits, credentials, health."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from imputehub.clock import FakeClock
from imputehub.connectors.base import Health, HealthStatus, PanelInfo, ServiceInfo
from imputehub.db.models import Service, ServiceHealthCheck
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_panel, make_service

SECRET = "s3cr3t-platform-token-XYZ"


class FakeConnector:
    """Healthy with a fixed response time, or raising what it is told to."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    async def check_health(self, service: ServiceInfo) -> Health:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Health(status=HealthStatus.HEALTHY, response_time_ms=42.0)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        return []


@pytest.fixture
def fake(runtime: Runtime) -> FakeConnector:
    connector = FakeConnector()
    runtime.connectors = {"michigan": connector}
    return connector


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Michigan Imputation Server",
        "api_type": "michigan",
        "base_url": "https://imputationserver.sph.umich.edu",
        "description": "The original.",
        "location": "Ann Arbor, USA",
        "supported_builds": ["hg19", "hg38"],
        "max_upload_size": 5 * 1024**3,
        "api_config": {"api_version": "v2", "queue": "default"},
        "job_time_limit_seconds": 86400,
    }
    values.update(overrides)
    return values


async def create(client: httpx.AsyncClient, admin: Actor, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/services", json=body(**overrides), headers=admin.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored(runtime: Runtime, service_id: str) -> Service:
    async with runtime.db.session() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        return service


async def count_services(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Service)) or 0)


# --- registration -------------------------------------------------------------------------


async def test_admin_registers_a_service(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, clock: FakeClock
) -> None:
    created = await create(client, admin)

    assert created["slug"] == "michigan-imputation-server"
    assert created["name"] == "Michigan Imputation Server"
    assert created["api_type"] == "michigan"
    assert created["base_url"] == "https://imputationserver.sph.umich.edu"
    assert created["supported_builds"] == ["hg19", "hg38"]
    assert created["max_upload_size"] == 5 * 1024**3
    assert created["api_config"] == {"api_version": "v2", "queue": "default"}
    assert created["job_time_limit_seconds"] == 86400
    assert created["is_active"] is True
    assert created["credential_set"] is False
    assert created["health_status"] == "unknown"
    assert created["last_checked_at"] is None
    assert created["response_time_ms"] is None
    # Due for a health check at once.
    assert (await stored(runtime, created["id"])).health_next_run_at == clock.now()

    response = await client.get(f"/api/v1/services/{created['id']}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_minimal_service_gets_defaults(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.post(
        "/api/v1/services",
        json={"name": "Local engine", "api_type": "local", "base_url": "http://127.0.0.1:9000/"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["slug"] == "local-engine"
    assert created["base_url"] == "http://127.0.0.1:9000"
    assert created["supported_builds"] == []
    assert created["api_config"] == {}
    assert created["description"] == ""
    assert created["max_upload_size"] is None
    assert created["job_time_limit_seconds"] is None


async def test_explicit_slug_is_kept(client: httpx.AsyncClient, admin: Actor) -> None:
    created = await create(client, admin, slug="umich")
    assert created["slug"] == "umich"
    response = await client.get("/api/v1/services/umich", headers=admin.headers)
    assert response.json()["id"] == created["id"]


# --- the credential -----------------------------------------------------------------------


async def test_credential_is_never_returned_and_not_stored_in_clear(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    runtime: Runtime,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    bodies: list[str] = []
    response = await client.post(
        "/api/v1/services", json=body(credential=SECRET), headers=admin.headers
    )
    assert response.status_code == 201
    bodies.append(response.text)
    service_id = response.json()["id"]
    assert response.json()["credential_set"] is True

    async def raw_column() -> str | None:
        async with runtime.db.session() as session:
            value: str | None = await session.scalar(
                text("SELECT credential_encrypted FROM services WHERE id = :id"),
                {"id": service_id},
            )
            return value

    raw = await raw_column()
    assert raw is not None
    assert SECRET not in raw
    assert runtime.vault.decrypt(raw) == SECRET

    for path, headers in [
        (f"/api/v1/services/{service_id}", admin.headers),
        ("/api/v1/services?all=true", admin.headers),
        (f"/api/v1/services/{service_id}/health-history", admin.headers),
    ]:
        response = await client.get(path, headers=headers)
        assert response.status_code == 200
        bodies.append(response.text)
    response = await client.post(
        f"/api/v1/services/{service_id}/health-check", headers=admin.headers
    )
    bodies.append(response.text)
    response = await client.get("/api/v1/services", headers=alice.headers)
    assert [s["id"] for s in response.json()] == [service_id]
    bodies.append(response.text)

    # A PATCH without the credential keeps it; with a new one replaces it.
    response = await client.patch(
        f"/api/v1/services/{service_id}", json={"location": "Online"}, headers=admin.headers
    )
    assert response.json()["credential_set"] is True
    bodies.append(response.text)
    assert await raw_column() == raw
    response = await client.patch(
        f"/api/v1/services/{service_id}", json={"credential": SECRET + "-2"}, headers=admin.headers
    )
    assert response.status_code == 200
    bodies.append(response.text)
    replaced = await raw_column()
    assert replaced is not None
    assert runtime.vault.decrypt(replaced) == SECRET + "-2"

    assert all(SECRET not in text_ for text_ in bodies)

    # null clears it.
    response = await client.patch(
        f"/api/v1/services/{service_id}", json={"credential": None}, headers=admin.headers
    )
    assert response.json()["credential_set"] is False
    assert await raw_column() is None


async def test_a_rejected_request_does_not_echo_the_credential(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    response = await client.post(
        "/api/v1/services",
        json=body(credential=SECRET, base_url="javascript:alert(1)"),
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert SECRET not in response.text
    response = await client.post(
        "/api/v1/services", json=body(credential=SECRET, extra=1), headers=admin.headers
    )
    assert response.status_code == 422
    assert SECRET not in response.text


# --- discovery and visibility ---------------------------------------------------------------


@pytest.fixture
async def mixed(runtime: Runtime) -> dict[str, Service]:
    return {
        "healthy": await make_service(runtime, slug="healthy", name="A healthy"),
        "unhealthy": await make_service(
            runtime, slug="unhealthy", name="B unhealthy", health_status="unhealthy"
        ),
        "unknown": await make_service(
            runtime, slug="unknown", name="C unknown", health_status="unknown"
        ),
        "inactive": await make_service(
            runtime, slug="inactive", name="D inactive", is_active=False
        ),
    }


async def test_users_discover_active_healthy_services_only(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, mixed: dict[str, Service]
) -> None:
    for actor in (alice, admin):
        response = await client.get("/api/v1/services", headers=actor.headers)
        assert response.status_code == 200
        listed = response.json()
        assert [s["slug"] for s in listed] == ["healthy"]
        assert {"response_time_ms", "health_status", "last_checked_at"} <= set(listed[0])

    response = await client.get("/api/v1/services?all=true", headers=admin.headers)
    assert [s["slug"] for s in response.json()] == ["healthy", "unhealthy", "unknown", "inactive"]

    response = await client.get("/api/v1/services?all=true", headers=alice.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    response = await client.get("/api/v1/services?all=false", headers=alice.headers)
    assert response.status_code == 200
    response = await client.get("/api/v1/services?all=maybe", headers=admin.headers)
    assert response.status_code == 422


async def test_users_read_active_services_by_id_or_slug(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, mixed: dict[str, Service]
) -> None:
    unhealthy = mixed["unhealthy"]
    for ref in (unhealthy.id, unhealthy.slug):
        response = await client.get(f"/api/v1/services/{ref}", headers=alice.headers)
        assert response.status_code == 200
        assert response.json()["id"] == unhealthy.id

    inactive = mixed["inactive"]
    for ref in (inactive.id, inactive.slug, "no-such-service"):
        response = await client.get(f"/api/v1/services/{ref}", headers=alice.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    response = await client.get(f"/api/v1/services/{inactive.slug}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["is_active"] is False


# --- edits and deactivation -----------------------------------------------------------------


async def test_admin_edits_a_service(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, clock: FakeClock
) -> None:
    created = await create(client, admin)
    clock.advance(60)
    response = await client.patch(
        f"/api/v1/services/{created['slug']}",
        json={
            "name": "UMich",
            "slug": "umich",
            "supported_builds": ["hg38"],
            "description": None,
            "max_upload_size": None,
            "api_config": {"api_version": "v3"},
        },
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "UMich"
    assert updated["slug"] == "umich"
    assert updated["supported_builds"] == ["hg38"]
    assert updated["description"] == ""
    assert updated["max_upload_size"] is None
    assert updated["api_config"] == {"api_version": "v3"}
    assert updated["location"] == created["location"]  # untouched
    assert updated["updated_at"] != created["updated_at"]
    # A new config deserves a fresh health check.
    assert (await stored(runtime, created["id"])).health_next_run_at == clock.now()


async def test_renaming_does_not_trigger_a_health_check(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, clock: FakeClock
) -> None:
    created = await create(client, admin)
    due = (await stored(runtime, created["id"])).health_next_run_at
    clock.advance(60)
    await client.patch(
        f"/api/v1/services/{created['id']}", json={"name": "Other"}, headers=admin.headers
    )
    assert (await stored(runtime, created["id"])).health_next_run_at == due


async def test_delete_deactivates_and_reactivation_schedules_a_check(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, clock: FakeClock
) -> None:
    service = await make_service(runtime, slug="to-hide", health_next_run_at=None)
    response = await client.delete(f"/api/v1/services/{service.id}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await stored(runtime, service.id)).is_active is False
    assert (await client.get("/api/v1/services/to-hide", headers=alice.headers)).status_code == 404
    assert (await client.get("/api/v1/services", headers=alice.headers)).json() == []
    # Again: still 204, still there.
    response = await client.delete("/api/v1/services/to-hide", headers=admin.headers)
    assert response.status_code == 204
    assert await count_services(runtime) == 1

    clock.advance(120)
    response = await client.patch(
        "/api/v1/services/to-hide", json={"is_active": True}, headers=admin.headers
    )
    assert response.json()["is_active"] is True
    assert (await stored(runtime, service.id)).health_next_run_at == clock.now()


async def test_builds_cannot_drop_one_that_active_panels_use(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime, supported_builds=["hg19", "hg38"])
    panel = await make_panel(runtime, service, build="hg19")
    response = await client.patch(
        f"/api/v1/services/{service.id}",
        json={"supported_builds": ["hg38"]},
        headers=admin.headers,
    )
    assert response.status_code == 409
    assert "hg19" in response.json()["detail"]
    assert (await stored(runtime, service.id)).supported_builds == ["hg19", "hg38"]

    await client.delete(f"/api/v1/reference-panels/{panel.id}", headers=admin.headers)
    response = await client.patch(
        f"/api/v1/services/{service.id}",
        json={"supported_builds": ["hg38"]},
        headers=admin.headers,
    )
    assert response.status_code == 200


# --- authorization ---------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("POST", "/api/v1/services", body()),
    ("PATCH", "/api/v1/services/{id}", {"name": "x"}),
    ("DELETE", "/api/v1/services/{id}", None),
    ("POST", "/api/v1/services/{id}/health-check", None),
]
USER_ROUTES = [
    ("GET", "/api/v1/services", None),
    ("GET", "/api/v1/services/{id}", None),
    ("GET", "/api/v1/services/{id}/health-history", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES + USER_ROUTES)
async def test_anonymous_callers_get_401(
    client: httpx.AsyncClient, runtime: Runtime, method: str, path: str, payload: Any
) -> None:
    service = await make_service(runtime)
    response = await client.request(method, path.format(id=service.id), json=payload)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert await count_services(runtime) == 1


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES)
async def test_users_get_403_on_admin_routes(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    fake: FakeConnector,
    method: str,
    path: str,
    payload: Any,
) -> None:
    service = await make_service(runtime, name="Before")
    response = await client.request(
        method, path.format(id=service.id), json=payload, headers=alice.headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    after = await stored(runtime, service.id)
    assert (after.name, after.is_active) == ("Before", True)
    assert await count_services(runtime) == 1
    assert fake.calls == 0


# --- bad input ------------------------------------------------------------------------------

BAD_CREATE_BODIES = [
    pytest.param({"name": 123}, id="name-not-a-string"),
    pytest.param({"name": ""}, id="name-empty"),
    pytest.param({"name": "   "}, id="name-blank"),
    pytest.param({"name": "x" * 201}, id="name-too-long"),
    pytest.param({"name": None}, id="name-null"),
    pytest.param({"slug": "Not A Slug"}, id="slug-format"),
    pytest.param({"slug": "x" * 101}, id="slug-too-long"),
    pytest.param({"name": "!!!"}, id="slug-underivable"),
    pytest.param({"api_type": "ftp"}, id="api-type-unknown"),
    pytest.param({"base_url": "file:///etc/passwd"}, id="url-file"),
    pytest.param({"base_url": "javascript:alert(1)"}, id="url-javascript"),
    pytest.param({"base_url": "ftp://example.org"}, id="url-ftp"),
    pytest.param({"base_url": "https://"}, id="url-no-host"),
    pytest.param({"base_url": "not a url"}, id="url-garbage"),
    pytest.param({"base_url": "https://admin:pw@example.org"}, id="url-userinfo"),
    pytest.param({"base_url": "https://example.org/" + "a" * 2000}, id="url-too-long"),
    pytest.param({"base_url": ["https://example.org"]}, id="url-wrong-type"),
    pytest.param({"description": "x" * 10_001}, id="description-too-long"),
    pytest.param({"location": "x" * 201}, id="location-too-long"),
    pytest.param({"supported_builds": ["hg18"]}, id="build-unknown"),
    pytest.param({"supported_builds": "hg19"}, id="builds-not-a-list"),
    pytest.param({"max_upload_size": 0}, id="upload-size-zero"),
    pytest.param({"max_upload_size": -5}, id="upload-size-negative"),
    pytest.param({"max_upload_size": "5"}, id="upload-size-string"),
    pytest.param({"max_upload_size": 2**64}, id="upload-size-huge"),
    pytest.param({"job_time_limit_seconds": 0}, id="time-limit-zero"),
    pytest.param({"job_time_limit_seconds": -1}, id="time-limit-negative"),
    pytest.param({"api_config": ["a", "list"]}, id="config-not-an-object"),
    pytest.param({"api_config": {"token": "abc"}}, id="config-token"),
    pytest.param({"api_config": {"password": "abc"}}, id="config-password"),
    pytest.param({"api_config": {"nested": {"client_secret": "abc"}}}, id="config-nested-secret"),
    pytest.param({"api_config": {"apiKey": "abc"}}, id="config-api-key"),
    pytest.param({"api_config": {"blob": "x" * 20_000}}, id="config-too-large"),
    pytest.param({"credential": ""}, id="credential-empty"),
    pytest.param({"credential": "x" * 8193}, id="credential-too-long"),
    pytest.param({"credential": 12345}, id="credential-not-a-string"),
    pytest.param({"is_active": "yes"}, id="is-active-string"),
    pytest.param({"health_status": "healthy"}, id="unknown-field-health"),
    pytest.param({"credential_encrypted": "x"}, id="unknown-field-column"),
    pytest.param({"id": "1"}, id="unknown-field-id"),
]


@pytest.mark.parametrize("overrides", BAD_CREATE_BODIES)
async def test_bad_create_input_is_422_and_stores_nothing(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, overrides: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/services", json=body(**overrides), headers=admin.headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "invalid_input"
    assert problem["detail"]
    assert await count_services(runtime) == 0


async def test_missing_required_fields_are_named(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.post("/api/v1/services", json={}, headers=admin.headers)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"name", "api_type", "base_url"} <= fields


async def test_secret_config_key_message_points_to_credential(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    response = await client.post(
        "/api/v1/services",
        json=body(api_config={"client_secret": "very-secret-value"}),
        headers=admin.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "api_config"
    assert "credential" in problem["detail"]
    assert "very-secret-value" not in response.text


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"name": "x",', id="truncated"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_malformed_json_is_422(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, raw: bytes
) -> None:
    headers = {**admin.headers, "content-type": "application/json"}
    for method, path in (("POST", "/api/v1/services"), ("PATCH", "/api/v1/services/any")):
        response = await client.request(method, path, content=raw, headers=headers)
        assert response.status_code == 422, (method, response.text)
        assert response.json()["code"] == "invalid_input"
    assert await count_services(runtime) == 0


async def test_duplicate_slug_is_409_and_stores_nothing(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime
) -> None:
    await create(client, admin, slug="umich")
    response = await client.post("/api/v1/services", json=body(slug="umich"), headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "slug_taken"

    # A derived slug clashes the same way: the admin is asked to pick one.
    await create(client, admin, name="TOPMed")
    response = await client.post(
        "/api/v1/services", json=body(name="topmed"), headers=admin.headers
    )
    assert response.status_code == 409
    assert "slug" in response.json()["detail"]
    assert await count_services(runtime) == 2


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"base_url": "javascript:alert(1)"}, id="url-javascript"),
        pytest.param({"base_url": "file:///etc/passwd"}, id="url-file"),
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"base_url": None}, id="url-null"),
        pytest.param({"api_type": None}, id="api-type-null"),
        pytest.param({"is_active": None}, id="is-active-null"),
        pytest.param({"api_config": None}, id="config-null"),
        pytest.param({"slug": "Bad Slug"}, id="slug-format"),
        pytest.param({"api_config": {"access_token": "x"}}, id="config-secret"),
        pytest.param({"max_upload_size": 0}, id="upload-size-zero"),
        pytest.param({"supported_builds": ["hg18"]}, id="build-unknown"),
        pytest.param({"name": 5}, id="name-wrong-type"),
        pytest.param({"surprise": True}, id="unknown-field"),
        pytest.param({"credential": ""}, id="credential-empty"),
    ],
)
async def test_bad_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, changes: dict[str, Any]
) -> None:
    created = await create(client, admin, credential=SECRET)
    # A valid change rides along with the bad one: it must not be half-applied.
    response = await client.patch(
        f"/api/v1/services/{created['id']}",
        json={"location": "Somewhere else", **changes},
        headers=admin.headers,
    )
    assert response.status_code == 422, response.text
    after = await client.get(f"/api/v1/services/{created['id']}", headers=admin.headers)
    assert after.json() == created


async def test_patch_slug_clash_is_409_and_changes_nothing(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    first = await create(client, admin, slug="first")
    await create(client, admin, slug="second", name="Second")
    response = await client.patch(
        f"/api/v1/services/{first['id']}",
        json={"name": "Renamed", "slug": "second"},
        headers=admin.headers,
    )
    assert response.status_code == 409
    assert (await client.get("/api/v1/services/first", headers=admin.headers)).json() == first
    # Keeping one's own slug is no clash.
    response = await client.patch(
        "/api/v1/services/first", json={"slug": "first"}, headers=admin.headers
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/health-check", None),
        ("GET", "/health-history", None),
    ],
)
async def test_unknown_service_is_404(
    client: httpx.AsyncClient, admin: Actor, method: str, suffix: str, payload: Any
) -> None:
    response = await client.request(
        method, f"/api/v1/services/nope{suffix}", json=payload, headers=admin.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- health checks and history ---------------------------------------------------------------


async def test_admin_runs_a_health_check(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    runtime: Runtime,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    created = await create(client, admin)
    response = await client.post(
        f"/api/v1/services/{created['id']}/health-check", headers=admin.headers
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["service_id"] == created["id"]
    assert result["status"] == "healthy"
    assert result["response_time_ms"] == 42.0
    assert result["message"] is None

    # The service is now healthy and shows up in discovery with its figures.
    [listed] = (await client.get("/api/v1/services", headers=alice.headers)).json()
    assert listed["id"] == created["id"]
    assert listed["health_status"] == "healthy"
    assert listed["response_time_ms"] == 42.0
    assert listed["last_checked_at"] is not None
    assert (await stored(runtime, created["id"])).health_next_run_at == clock.now() + timedelta(
        seconds=runtime.settings.health_check_interval_seconds
    )


async def test_a_failing_service_becomes_unhealthy_and_leaves_discovery(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, fake: FakeConnector
) -> None:
    service = await make_service(runtime, slug="flaky")
    assert len((await client.get("/api/v1/services", headers=alice.headers)).json()) == 1
    fake.error = ConnectionError("connection refused")
    response = await client.post("/api/v1/services/flaky/health-check", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "unhealthy"
    assert response.json()["message"] == "the health check failed unexpectedly (ConnectionError)"
    assert (await client.get("/api/v1/services", headers=alice.headers)).json() == []
    # ...but stays readable for users who have jobs there.
    response = await client.get(f"/api/v1/services/{service.id}", headers=alice.headers)
    assert response.json()["health_status"] == "unhealthy"


async def test_service_without_connector_is_unknown(
    client: httpx.AsyncClient, admin: Actor, fake: FakeConnector
) -> None:
    created = await create(client, admin, api_type="dnastack")
    response = await client.post(
        f"/api/v1/services/{created['id']}/health-check", headers=admin.headers
    )
    assert response.json()["status"] == "unknown"
    assert response.json()["message"] == (
        "no connector for api_type 'dnastack' in this version of imputehub"
    )


async def test_health_history_newest_first_with_limit(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    runtime: Runtime,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await make_service(runtime, slug="tracked")
    times = []
    for i in range(3):
        fake.error = None if i != 1 else ConnectionError("down")
        times.append(clock.now().isoformat().replace("+00:00", "Z"))
        await client.post("/api/v1/services/tracked/health-check", headers=admin.headers)
        clock.advance(60)

    response = await client.get("/api/v1/services/tracked/health-history", headers=alice.headers)
    assert response.status_code == 200
    rows = response.json()
    assert [r["status"] for r in rows] == ["healthy", "unhealthy", "healthy"]
    assert [r["checked_at"].replace("+00:00", "Z") for r in rows] == times[::-1]
    assert all(r["service_id"] == service.id for r in rows)

    response = await client.get(
        "/api/v1/services/tracked/health-history?limit=2", headers=alice.headers
    )
    assert len(response.json()) == 2
    for bad in ("0", "501", "x"):
        response = await client.get(
            f"/api/v1/services/tracked/health-history?limit={bad}", headers=alice.headers
        )
        assert response.status_code == 422


async def test_health_history_follows_service_visibility(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime, is_active=False)
    async with runtime.db.session() as session:
        session.add(
            ServiceHealthCheck(service_id=service.id, checked_at=runtime.clock.now(), status="ok")
        )
    path = f"/api/v1/services/{service.id}/health-history"
    assert (await client.get(path, headers=alice.headers)).status_code == 404
    response = await client.get(path, headers=admin.headers)
    assert response.status_code == 200
    assert len(response.json()) == 1


async def test_openapi_marks_credential_write_only(client: httpx.AsyncClient) -> None:
    schema = json.loads((await client.get("/openapi.json")).text)
    public = schema["components"]["schemas"]["ServicePublic"]["properties"]
    assert "credential" not in public
    assert "credential_encrypted" not in public
    assert "credential_set" in public
