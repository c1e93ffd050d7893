"""The reference panels API: listing with filters, admin registration and edits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.db.models import ReferencePanel, Service
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_panel, make_service

PANEL_ID = "apps@1000g-phase-3-v5@2.0.0"
URL = "/api/v1/reference-panels"


@pytest.fixture
async def michigan(runtime: Runtime) -> Service:
    return await make_service(
        runtime, slug="michigan", name="Michigan", supported_builds=["hg19", "hg38"]
    )


@pytest.fixture
async def hg38_only(runtime: Runtime) -> Service:
    return await make_service(runtime, slug="topmed", name="TOPMed", supported_builds=["hg38"])


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "service_id": "michigan",
        "panel_id": PANEL_ID,
        "display_name": "1000 Genomes Phase 3 (Version 5)",
        "build": "hg19",
        "populations": ["AFR", "eur", "mixed"],
        "sample_count": 2504,
        "variant_count": 49_143_605,
        "description": "Low-coverage whole genomes.",
    }
    values.update(overrides)
    return values


async def create(client: httpx.AsyncClient, admin: Actor, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/reference-panels", json=body(**overrides), headers=admin.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def count_panels(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ReferencePanel)) or 0)


async def test_admin_registers_a_panel(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, michigan: Service
) -> None:
    created = await create(client, admin)
    assert created["service_id"] == michigan.id
    assert created["panel_id"] == PANEL_ID
    assert created["slug"] == "michigan-1000-genomes-phase-3-version-5"
    assert created["build"] == "hg19"
    assert created["populations"] == ["afr", "eur", "mixed"]
    assert created["sample_count"] == 2504
    assert created["variant_count"] == 49_143_605
    assert created["is_active"] is True

    for ref in (created["id"], created["slug"]):
        response = await client.get(f"/api/v1/reference-panels/{ref}", headers=alice.headers)
        assert response.status_code == 200
        assert response.json() == created


async def test_service_given_by_id_and_slug_chosen(
    client: httpx.AsyncClient, admin: Actor, michigan: Service
) -> None:
    created = await create(client, admin, service_id=michigan.id, slug="kgp3")
    assert created["slug"] == "kgp3"
    assert created["service_id"] == michigan.id


async def test_same_panel_id_on_another_service_is_fine(
    client: httpx.AsyncClient, admin: Actor, michigan: Service, hg38_only: Service
) -> None:
    await create(client, admin)
    other = await create(client, admin, service_id="topmed", build="hg38")
    assert other["service_id"] == hg38_only.id
    assert other["slug"] == "topmed-1000-genomes-phase-3-version-5"


async def test_a_panel_is_found_by_the_service_s_own_id_scoped_by_service(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, michigan: Service, hg38_only: Service
) -> None:
    mine = await create(client, admin)
    url = f"/api/v1/reference-panels/{PANEL_ID}"

    found = await client.get(url, headers=alice.headers)
    assert found.status_code == 200, found.text
    assert found.json() == mine

    # The same id at a second service: naming the service tells them apart.
    other = await create(client, admin, service_id="topmed", build="hg38")
    ambiguous = await client.get(url, headers=alice.headers)
    assert ambiguous.status_code == 422
    assert ambiguous.json()["code"] == "ambiguous_panel"
    assert ambiguous.json()["detail"] == (
        f"panel id '{PANEL_ID}' is offered by several services (michigan, topmed): "
        "name the service too, or the panel by its hub id or slug"
    )
    for service, expected in (("michigan", mine), ("topmed", other), (hg38_only.id, other)):
        scoped = await client.get(url, params={"service_id": service}, headers=alice.headers)
        assert scoped.status_code == 200, scoped.text
        assert scoped.json() == expected
    # The hub's own id and slug stay unambiguous.
    by_slug = await client.get(f"/api/v1/reference-panels/{other['slug']}", headers=alice.headers)
    assert by_slug.json() == other
    unknown = await client.get(url, params={"service_id": "nope"}, headers=alice.headers)
    assert unknown.status_code == 404


@pytest.fixture
async def catalogue(runtime: Runtime, michigan: Service, hg38_only: Service) -> dict[str, str]:
    hidden_service = await make_service(runtime, slug="hidden", is_active=False)
    panels = {
        "hrc": await make_panel(
            runtime, michigan, slug="hrc", display_name="A HRC", populations=["eur", "mixed"]
        ),
        "kgp": await make_panel(
            runtime,
            michigan,
            slug="kgp",
            display_name="B 1000G",
            build="hg38",
            populations=["afr", "eur"],
        ),
        "topmed": await make_panel(
            runtime,
            hg38_only,
            slug="topmed-r3",
            display_name="C TOPMed",
            build="hg38",
            populations=["all"],
        ),
        "retired": await make_panel(
            runtime, michigan, slug="retired", display_name="D retired", is_active=False
        ),
        "orphan": await make_panel(runtime, hidden_service, slug="orphan", display_name="E"),
    }
    return {name: panel.slug for name, panel in panels.items()}


async def slugs(client: httpx.AsyncClient, actor: Actor, query: str = "") -> list[str]:
    response = await client.get(f"/api/v1/reference-panels{query}", headers=actor.headers)
    assert response.status_code == 200, response.text
    return [p["slug"] for p in response.json()]


async def test_users_list_active_panels_of_active_services(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, catalogue: dict[str, str]
) -> None:
    assert await slugs(client, alice) == ["hrc", "kgp", "topmed-r3"]
    assert await slugs(client, admin) == ["hrc", "kgp", "topmed-r3"]
    assert await slugs(client, admin, "?all=true") == [
        "hrc",
        "kgp",
        "topmed-r3",
        "retired",
        "orphan",
    ]
    response = await client.get("/api/v1/reference-panels?all=true", headers=alice.headers)
    assert response.status_code == 403


async def test_list_filters(
    client: httpx.AsyncClient,
    alice: Actor,
    admin: Actor,
    michigan: Service,
    catalogue: dict[str, str],
) -> None:
    assert await slugs(client, alice, "?service_id=michigan") == ["hrc", "kgp"]
    assert await slugs(client, alice, f"?service_id={michigan.id}") == ["hrc", "kgp"]
    assert await slugs(client, alice, "?build=hg38") == ["kgp", "topmed-r3"]
    assert await slugs(client, alice, "?population=eur") == ["hrc", "kgp"]
    assert await slugs(client, alice, "?population=AFR") == ["kgp"]
    assert await slugs(client, alice, "?service_id=michigan&build=hg19&population=mixed") == ["hrc"]
    assert await slugs(client, alice, "?population=sas") == []
    assert await slugs(client, admin, "?service_id=hidden&all=true") == ["orphan"]

    for query, status in [
        ("?service_id=hidden", 404),
        ("?service_id=nope", 404),
        ("?build=hg18", 422),
        ("?population=" + "x" * 33, 422),
        ("?all=perhaps", 422),
    ]:
        response = await client.get(f"/api/v1/reference-panels{query}", headers=alice.headers)
        assert response.status_code == status, query


async def test_users_cannot_read_hidden_panels(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, catalogue: dict[str, str]
) -> None:
    for name in ("retired", "orphan"):
        path = f"/api/v1/reference-panels/{catalogue[name]}"
        response = await client.get(path, headers=alice.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert (await client.get(path, headers=admin.headers)).status_code == 200
    response = await client.get("/api/v1/reference-panels/nope", headers=admin.headers)
    assert response.status_code == 404


async def test_admin_edits_and_deactivates_a_panel(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, michigan: Service
) -> None:
    created = await create(client, admin)
    response = await client.patch(
        f"/api/v1/reference-panels/{created['slug']}",
        json={
            "display_name": "1000G",
            "slug": "kgp",
            "build": "hg38",
            "populations": ["sas"],
            "sample_count": None,
            "description": None,
        },
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["display_name"], updated["slug"], updated["build"]) == ("1000G", "kgp", "hg38")
    assert updated["populations"] == ["sas"]
    assert updated["sample_count"] is None
    assert updated["description"] == ""
    assert updated["variant_count"] == created["variant_count"]

    response = await client.delete("/api/v1/reference-panels/kgp", headers=admin.headers)
    assert response.status_code == 204
    assert await slugs(client, alice) == []
    assert (
        await client.get("/api/v1/reference-panels/kgp", headers=alice.headers)
    ).status_code == 404
    assert await count_panels(runtime) == 1  # the row stays for the jobs that used it
    response = await client.delete("/api/v1/reference-panels/kgp", headers=admin.headers)
    assert response.status_code == 204

    response = await client.patch(
        "/api/v1/reference-panels/kgp", json={"is_active": True}, headers=admin.headers
    )
    assert response.json()["is_active"] is True
    assert await slugs(client, alice) == ["kgp"]


# --- authorization ---------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("POST", "/api/v1/reference-panels", body()),
    ("PATCH", "/api/v1/reference-panels/{id}", {"display_name": "x"}),
    ("DELETE", "/api/v1/reference-panels/{id}", None),
]
USER_ROUTES = [
    ("GET", "/api/v1/reference-panels", None),
    ("GET", "/api/v1/reference-panels/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES + USER_ROUTES)
async def test_anonymous_callers_get_401(
    client: httpx.AsyncClient,
    runtime: Runtime,
    michigan: Service,
    method: str,
    path: str,
    payload: Any,
) -> None:
    panel = await make_panel(runtime, michigan)
    response = await client.request(method, path.format(id=panel.id), json=payload)
    assert response.status_code == 401
    assert await count_panels(runtime) == 1


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES)
async def test_users_get_403_on_admin_routes(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    michigan: Service,
    method: str,
    path: str,
    payload: Any,
) -> None:
    panel = await make_panel(runtime, michigan, display_name="Before")
    response = await client.request(
        method, path.format(id=panel.id), json=payload, headers=alice.headers
    )
    assert response.status_code == 403
    async with runtime.db.session() as session:
        rows = list(await session.scalars(select(ReferencePanel)))
    assert [(p.display_name, p.is_active) for p in rows] == [("Before", True)]


# --- bad input ------------------------------------------------------------------------------

BAD_CREATE_BODIES = [
    pytest.param({"service_id": "nope"}, 422, id="unknown-service"),
    pytest.param({"service_id": None}, 422, id="service-null"),
    pytest.param({"service_id": "topmed", "build": "hg19"}, 422, id="build-not-offered"),
    pytest.param({"build": "hg18"}, 422, id="build-unknown"),
    pytest.param({"build": 19}, 422, id="build-wrong-type"),
    pytest.param({"panel_id": ""}, 422, id="panel-id-empty"),
    pytest.param({"panel_id": "x" * 301}, 422, id="panel-id-too-long"),
    pytest.param({"panel_id": "a\nb"}, 422, id="panel-id-control-char"),
    pytest.param({"display_name": "x" * 301}, 422, id="display-name-too-long"),
    pytest.param({"display_name": "  "}, 422, id="display-name-blank"),
    pytest.param({"slug": "Bad Slug"}, 422, id="slug-format"),
    pytest.param({"display_name": "???", "slug": None}, 201, id="slug-from-service-only"),
    pytest.param({"populations": "afr"}, 422, id="populations-not-a-list"),
    pytest.param({"populations": ["two words"]}, 422, id="population-format"),
    pytest.param({"populations": ["x" * 33]}, 422, id="population-too-long"),
    pytest.param({"populations": [f"p{i}" for i in range(51)]}, 422, id="too-many-populations"),
    pytest.param({"sample_count": -1}, 422, id="samples-negative"),
    pytest.param({"sample_count": "2504"}, 422, id="samples-string"),
    pytest.param({"sample_count": 2**31}, 422, id="samples-too-big"),
    pytest.param({"variant_count": -1}, 422, id="variants-negative"),
    pytest.param({"variant_count": 1.5}, 422, id="variants-fraction"),
    pytest.param({"description": "x" * 10_001}, 422, id="description-too-long"),
    pytest.param({"is_active": "true"}, 422, id="is-active-string"),
    pytest.param({"service": "michigan"}, 422, id="unknown-field"),
]


@pytest.mark.parametrize(("overrides", "status"), BAD_CREATE_BODIES)
async def test_bad_create_input(
    client: httpx.AsyncClient,
    admin: Actor,
    runtime: Runtime,
    michigan: Service,
    hg38_only: Service,
    overrides: dict[str, Any],
    status: int,
) -> None:
    response = await client.post(
        "/api/v1/reference-panels", json=body(**overrides), headers=admin.headers
    )
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["code"] == "invalid_input"
        assert await count_panels(runtime) == 0
    else:
        assert response.json()["slug"] == "michigan"


async def test_build_error_names_the_builds_offered(
    client: httpx.AsyncClient, admin: Actor, hg38_only: Service
) -> None:
    response = await client.post(
        "/api/v1/reference-panels",
        json=body(service_id="topmed", build="hg19"),
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "build"
    assert "hg38" in response.json()["detail"]


async def test_a_service_without_listed_builds_takes_any(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime
) -> None:
    await make_service(runtime, slug="open", supported_builds=[])
    created = await create(client, admin, service_id="open", build="hg38")
    assert created["build"] == "hg38"


@pytest.mark.parametrize(
    "raw", [b'{"panel_id": ', b"nonsense", b"[]", b"null"], ids=["cut", "text", "array", "null"]
)
async def test_malformed_json_is_422(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, michigan: Service, raw: bytes
) -> None:
    panel = await make_panel(runtime, michigan)
    headers = {**admin.headers, "content-type": "application/json"}
    for method, path in (
        ("POST", "/api/v1/reference-panels"),
        ("PATCH", f"/api/v1/reference-panels/{panel.id}"),
    ):
        response = await client.request(method, path, content=raw, headers=headers)
        assert response.status_code == 422, (method, response.text)
    assert await count_panels(runtime) == 1


async def test_duplicates_are_409_and_store_nothing(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, michigan: Service
) -> None:
    await create(client, admin, slug="kgp")
    response = await client.post(
        "/api/v1/reference-panels", json=body(slug="other"), headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "panel_id_taken"
    response = await client.post(
        "/api/v1/reference-panels",
        json=body(slug="kgp", panel_id="apps@other@1"),
        headers=admin.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "slug_taken"
    assert await count_panels(runtime) == 1


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        pytest.param({"build": "hg38"}, 422, id="build-not-offered"),
        pytest.param({"build": None}, 422, id="build-null"),
        pytest.param({"panel_id": None}, 422, id="panel-id-null"),
        pytest.param({"display_name": None}, 422, id="display-name-null"),
        pytest.param({"populations": None}, 422, id="populations-null"),
        pytest.param({"slug": None}, 422, id="slug-null"),
        pytest.param({"populations": ["Bad label"]}, 422, id="population-format"),
        pytest.param({"sample_count": -3}, 422, id="samples-negative"),
        pytest.param({"service_id": "michigan"}, 422, id="service-cannot-move"),
        pytest.param({"slug": "taken"}, 409, id="slug-taken"),
        pytest.param({"panel_id": "apps@taken@1"}, 409, id="panel-id-taken"),
    ],
)
async def test_bad_patch_changes_nothing(
    client: httpx.AsyncClient,
    admin: Actor,
    runtime: Runtime,
    hg38_only: Service,
    changes: dict[str, Any],
    status: int,
) -> None:
    legacy = await make_service(runtime, slug="legacy", supported_builds=["hg19"])
    await make_panel(runtime, legacy, slug="taken", panel_id="apps@taken@1")
    panel = await make_panel(runtime, legacy, slug="mine", panel_id="apps@mine@1")
    path = f"/api/v1/reference-panels/{panel.id}"
    before = (await client.get(path, headers=admin.headers)).json()
    response = await client.patch(
        path, json={"description": "changed", **changes}, headers=admin.headers
    )
    assert response.status_code == status, response.text
    assert (await client.get(path, headers=admin.headers)).json() == before


async def test_reactivating_a_panel_checks_the_build_again(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime, slug="narrowed", supported_builds=["hg38"])
    # Left over from before the service dropped hg19.
    panel = await make_panel(runtime, service, build="hg19", is_active=False)
    response = await client.patch(
        f"/api/v1/reference-panels/{panel.id}", json={"is_active": True}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["field"] == "build"


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_unknown_panel_is_404(client: httpx.AsyncClient, admin: Actor, method: str) -> None:
    response = await client.request(
        method,
        "/api/v1/reference-panels/nope",
        json={"display_name": "x"} if method == "PATCH" else None,
        headers=admin.headers,
    )
    assert response.status_code == 404


async def test_registering_editing_and_deactivating_a_panel_is_audited(
    client: httpx.AsyncClient, admin: Actor, michigan: Service
) -> None:
    made = await client.post(URL, json=body(), headers=admin.headers)
    ref = made.json()["id"]
    await client.patch(f"{URL}/{ref}", json={"description": "new"}, headers=admin.headers)
    await client.delete(f"{URL}/{ref}", headers=admin.headers)
    log = await client.get(
        "/api/v1/admin/audit-log?target=reference_panel:" + ref, headers=admin.headers
    )
    entries = sorted(log.json()["items"], key=lambda e: e["id"])
    assert [e["action"] for e in entries] == ["panel_created", "panel_updated", "panel_deactivated"]
    assert entries[1]["details"]["fields"] == ["description"]
    assert all(e["actor"] == "admin" for e in entries)
