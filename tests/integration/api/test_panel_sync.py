"""POST /services/{id}/sync-panels against the emulated Michigan server, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.db.models import Service
from imputehub.files.vcf_check import check_bytes
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.vcf import make_vcf

TOKEN = "platform-michigan-token-42"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


async def michigan_service(
    runtime: Runtime, emulator: MichiganEmulator, *, slug: str = "michigan"
) -> Service:
    """A Michigan service at the emulator, holding the platform token."""
    return await factories.make_service(
        runtime,
        slug=slug,
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(TOKEN),
    )


async def test_sync_adds_updates_and_withdraws_panels_as_the_service_lists_them(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> None:
    service = await michigan_service(runtime, emulator)
    await factories.make_panel(
        runtime,
        service,
        slug="hapmap",
        panel_id="apps@hapmap-2@2.0.0",
        display_name="an old name",
        populations=["eur"],
    )
    await factories.make_panel(runtime, service, slug="gone", panel_id="apps@gone@1.0.0")
    sync = f"/api/v1/services/{service.id}/sync-panels"

    response = await client.post(sync, headers=admin.headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert len(result["added"]) == 2
    assert result["updated"] == ["hapmap"]
    assert result["deactivated"] == ["gone"]
    assert result["skipped"] == []
    listed = await client.get(
        "/api/v1/reference-panels",
        params={"service_id": service.id, "all": "true"},
        headers=admin.headers,
    )
    panels = {p["panel_id"]: p for p in listed.json()}
    assert panels["apps@hapmap-2@2.0.0"]["display_name"] == "HapMap 2 (GRCh37/hg19)"
    assert panels["apps@hapmap-2@2.0.0"]["populations"] == ["eur", "mixed", "off"]
    assert panels["apps@topmed-r3@1.0.0"]["build"] == "hg38"
    assert "afr" in panels["apps@1000g-phase-3-v5@2.0.0"]["populations"]
    assert panels["apps@gone@1.0.0"]["is_active"] is False

    again = await client.post(sync, headers=admin.headers)
    assert again.json() == {
        "service_id": service.id,
        "added": [],
        "updated": [],
        "deactivated": [],
        "skipped": [],
    }


async def test_two_syncs_at_once_add_each_panel_once(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> None:
    # An admin's sync and another admin's (or the health check's) at the same moment.
    service = await michigan_service(runtime, emulator)
    sync = f"/api/v1/services/{service.id}/sync-panels"

    first, second = await asyncio.gather(
        client.post(sync, headers=admin.headers), client.post(sync, headers=admin.headers)
    )

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert sorted([len(first.json()["added"]), len(second.json()["added"])]) == [0, 3]
    listed = await client.get(
        "/api/v1/reference-panels", params={"service_id": service.id}, headers=admin.headers
    )
    assert len(listed.json()) == 3


async def test_only_admins_sync_and_an_unknown_service_is_404(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    service = await factories.make_service(runtime, slug="michigan", api_type="michigan")

    as_user = await client.post(f"/api/v1/services/{service.id}/sync-panels", headers=alice.headers)
    unknown = await client.post("/api/v1/services/nope/sync-panels", headers=admin.headers)
    anonymous = await client.post(f"/api/v1/services/{service.id}/sync-panels")

    assert as_user.status_code == 403
    assert unknown.status_code == 404
    assert anonymous.status_code == 401


async def test_a_service_that_cannot_be_reached_changes_nothing(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    service = await factories.make_service(
        runtime,
        slug="michigan",
        api_type="michigan",
        base_url="http://127.0.0.1:9",  # nothing listens there
        credential_encrypted=runtime.vault.encrypt(TOKEN),
    )
    panel = await factories.make_panel(runtime, service, slug="kept")

    response = await client.post(
        f"/api/v1/services/{service.id}/sync-panels", headers=admin.headers
    )

    assert response.status_code == 503, response.text
    shown = await client.get(f"/api/v1/reference-panels/{panel.id}", headers=admin.headers)
    assert shown.json()["is_active"] is True


# ---- what sync records decides what a job may ask for -------------------------------


def topmed_job(**changes: Any) -> dict[str, Any]:
    """A job body for the TOPMed-like service, its panel named by the service's own id;
    `...` removes a field."""
    content = make_vcf(build="hg38", samples=25)
    body: dict[str, Any] = {
        "name": "chr20 study",
        "service_id": "topmed",
        "reference_panel_id": "apps@topmed-r3@1.0.0",
        "build": "hg38",
        "phasing": "eagle",
        "population": "all",
        "r2_filter": 0.3,
        "files": [
            {
                "filename": "study.vcf.gz",
                "size": len(content),
                "report": check_bytes([content]).to_dict(),
            }
        ],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
async def topmed(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> Service:
    """A service set up like TOPMed (no beagle), its panels synced."""
    emulator.like_topmed()
    service = await michigan_service(runtime, emulator, slug="topmed")
    response = await client.post(
        f"/api/v1/services/{service.id}/sync-panels", headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return service


async def test_sync_records_the_phasing_and_r2_filters_the_service_offers(
    client: httpx.AsyncClient, admin: Actor, topmed: Service
) -> None:
    shown = await client.get(f"/api/v1/services/{topmed.id}", headers=admin.headers)

    config = shown.json()["api_config"]
    assert config["phasing"] == ["eagle", "no_phasing"]
    assert config["r2_filter"] == [0, 0.001, 0.1, 0.2, 0.3]
    panel = await client.get("/api/v1/reference-panels/apps@topmed-r3@1.0.0", headers=admin.headers)
    assert panel.json()["populations"] == ["all"]


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        (
            {"phasing": "beagle"},
            "phasing",
            "service 'topmed' offers no phasing 'beagle' (it offers: eagle, no_phasing)",
        ),
        (
            {"r2_filter": 0.05},
            "r2_filter",
            "service 'topmed' offers no r2_filter 0.05 (it offers: 0, 0.001, 0.1, 0.2, 0.3)",
        ),
        (
            {"population": "eur"},
            "population",
            "does not list population 'eur' (it lists: all)",
        ),
    ],
    ids=["phasing", "r2_filter", "population"],
)
async def test_a_choice_the_service_does_not_offer_is_refused_before_any_upload(
    runtime: Runtime,
    client: httpx.AsyncClient,
    alice: Actor,
    topmed: Service,
    emulator: MichiganEmulator,
    changes: dict[str, Any],
    field: str,
    detail: str,
) -> None:
    # The dry run `imputehub submit` makes before uploading, and job creation itself.
    checked = await client.post(
        "/api/v1/jobs/check", json=topmed_job(**changes), headers=alice.headers
    )
    stored = await factories.make_file(runtime, alice.id, make_vcf(build="hg38", samples=25))
    created = await client.post(
        "/api/v1/jobs",
        json=topmed_job(**changes, files=..., input_file_ids=[stored.id]),
        headers=alice.headers,
    )

    assert checked.status_code == 422, checked.text
    assert checked.json()["field"] == field
    assert detail in checked.json()["detail"]
    assert created.status_code == 422, created.text
    assert detail in created.json()["detail"]
    listed = await client.get("/api/v1/jobs", headers=alice.headers)
    assert listed.json()["total"] == 0
    assert emulator.submit_posts() == 0


async def test_the_offered_choices_and_the_service_s_panel_id_make_a_job(
    client: httpx.AsyncClient, alice: Actor, topmed: Service
) -> None:
    response = await client.post("/api/v1/jobs/check", json=topmed_job(), headers=alice.headers)

    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["phasing"], preview["population"], preview["r2_filter"]) == (
        "eagle",
        "all",
        0.3,
    )
    shown = await client.get(
        f"/api/v1/reference-panels/{preview['reference_panel_id']}", headers=alice.headers
    )
    assert shown.json()["panel_id"] == "apps@topmed-r3@1.0.0"
    assert shown.json()["service_id"] == topmed.id


async def test_a_service_without_a_platform_credential_is_synced_anonymously(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> None:
    # Users bring their own tokens; the server lists its app's panels to anyone.
    service = await factories.make_service(
        runtime, slug="michigan", api_type="michigan", base_url=emulator.base_url
    )

    response = await client.post(
        f"/api/v1/services/{service.id}/sync-panels", headers=admin.headers
    )

    assert response.status_code == 200, response.text
    assert len(response.json()["added"]) == 3
