"""POST /services/{id}/sync-panels against the emulated Michigan server, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import MichiganEmulator, running_emulator

TOKEN = "platform-michigan-token-42"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


async def test_sync_adds_updates_and_withdraws_panels_as_the_service_lists_them(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> None:
    service = await factories.make_service(
        runtime,
        slug="michigan",
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(TOKEN),
    )
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
