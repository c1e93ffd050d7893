"""Maintenance and pauses over REST: refusing new jobs, holding them, pausing a service."""

from __future__ import annotations

import httpx

from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import set_hub
from tests.support.api import Actor
from tests.support.factories import make_file, make_panel, make_service


async def job_body(runtime: Runtime, user: Actor) -> dict[str, object]:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc", build="hg19")
    record = await make_file(runtime, user.id)
    return {
        "name": "chr20",
        "service_id": service.slug,
        "reference_panel_id": panel.slug,
        "input_file_ids": [record.id],
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
    }


async def test_refusing_maintenance_refuses_new_jobs_with_the_message(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime
) -> None:
    body = await job_body(runtime, alice)
    await set_hub(
        client,
        admin,
        maintenance=True,
        maintenance_new_jobs="refuse",
        maintenance_message="new disks",
    )
    refused = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert refused.status_code == 503
    assert refused.json()["code"] == "hub_in_maintenance"
    assert "new disks" in refused.json()["detail"]
    assert (await client.get("/api/v1/jobs", headers=alice.headers)).json()["items"] == []

    await set_hub(client, admin, maintenance_new_jobs="hold")
    held = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert held.status_code == 201, held.text


async def test_pausing_a_service_is_for_admins_and_audited(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime
) -> None:
    await make_service(runtime, slug="michigan")
    refused = await client.post("/api/v1/services/michigan/pause", headers=alice.headers)
    assert refused.status_code == 403
    paused = await client.post("/api/v1/services/michigan/pause", headers=admin.headers)
    assert paused.status_code == 200
    assert paused.json()["is_paused"] is True
    resumed = await client.post("/api/v1/services/michigan/resume", headers=admin.headers)
    assert resumed.json()["is_paused"] is False
    log = await client.get("/api/v1/admin/audit-log", headers=admin.headers)
    actions = [e["action"] for e in log.json()["items"]]
    assert "service_paused" in actions
    assert "service_resumed" in actions
