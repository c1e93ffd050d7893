"""The console's Panels pages over HTTP: panels per service, editing what users see,
(de)activating, and importing a local-engine panel from a file stored in the hub with the
real bcftools and tabix. Mistakes come back as the page with a message, nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from markupsafe import escape
from sqlalchemy import select

from imputehub.db.models import AuditEntry, ReferencePanel, Service
from imputehub.engine.panel_store import PanelStore
from imputehub.runtime import Runtime
from tests.support import vcf
from tests.support.api import Actor
from tests.support.factories import make_file, make_panel, make_service
from tests.support.panels import panel_text

HOSTILE = '<script>alert("x")</script>'
ESCAPED = str(escape(HOSTILE))  # as the pages write it
PANELS_API = "/api/v1/reference-panels"


async def panel_row(runtime: Runtime, panel_id: str) -> ReferencePanel | None:
    async with runtime.db.session() as session:
        return await session.scalar(
            select(ReferencePanel).where(
                (ReferencePanel.id == panel_id) | (ReferencePanel.panel_id == panel_id)
            )
        )


async def offered_slugs(client: httpx.AsyncClient, user: Actor) -> list[str]:
    answer = await client.get(PANELS_API, headers=user.headers)
    assert answer.status_code == 200, answer.text
    return [panel["slug"] for panel in answer.json()]


async def audit_actions(runtime: Runtime) -> list[str]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- the list, edits, (de)activation --------------------------------------------------------


async def test_panels_are_listed_per_service(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    michigan = await make_service(runtime, name="Michigan test", slug="michigan")
    topmed = await make_service(runtime, name="TOPMed test", slug="topmed")
    await make_panel(
        runtime,
        michigan,
        slug="hrc",
        display_name="HRC r1.1",
        panel_id="apps@hrc-r1.1@1.0.0",
        sample_count=32470,
        variant_count=39_635_008,
        contigs=["20", "21"],
    )
    await make_panel(runtime, topmed, slug="topmed-r3", display_name="TOPMed r3", build="hg38")
    await make_panel(runtime, topmed, slug="old", display_name="Retired panel", is_active=False)

    page = await client.get("/console/panels")
    assert page.status_code == 200
    assert 'aria-current="page">Panels' in page.text
    for text in ("Michigan test", "TOPMed test", "HRC r1.1", "TOPMed r3", "Retired panel"):
        assert text in page.text
    assert "apps@hrc-r1.1@1.0.0" in page.text
    assert "32,470" in page.text
    assert "39,635,008" in page.text
    assert "20, 21" in page.text
    assert "afr, eur, mixed" in page.text

    only = await client.get("/console/panels", params={"service": "topmed"})
    assert "TOPMed r3" in only.text
    assert "Retired panel" in only.text
    assert "HRC r1.1" not in only.text
    assert (await client.get("/console/panels", params={"service": "nope"})).status_code == 404


async def test_edit_what_users_see(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc", display_name="HRC")
    page = await client.get(f"/console/panels/{panel.id}")
    assert page.status_code == 200
    assert 'value="HRC"' in page.text

    answer = await client.post(
        f"/console/panels/{panel.id}",
        data={
            "csrf_token": admin_csrf,
            "display_name": "HRC release 1.1",
            "slug": "hrc-r11",
            "populations": "EUR, afr  sas",
            "description": "The Haplotype Reference Consortium panel.",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/panels/{panel.id}?done=saved"
    assert "The panel was saved." in (await client.get(answer.headers["location"])).text
    row = await panel_row(runtime, panel.id)
    assert row is not None
    assert (row.display_name, row.slug, row.populations) == (
        "HRC release 1.1",
        "hrc-r11",
        ["eur", "afr", "sas"],
    )
    (offered,) = (await client.get(PANELS_API, headers=alice.headers)).json()
    assert offered["display_name"] == "HRC release 1.1"
    assert offered["description"] == "The Haplotype Reference Consortium panel."


async def test_bad_edits_are_refused_and_markup_is_escaped(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc", display_name="HRC")
    await make_panel(runtime, service, slug="taken")
    base = {"csrf_token": admin_csrf, "display_name": "HRC", "slug": "hrc", "description": ""}

    bad_population = await client.post(
        f"/console/panels/{panel.id}", data={**base, "populations": "eur, <b>bad</b>"}
    )
    assert bad_population.status_code == 422
    assert "Each population must be 1-" in bad_population.text
    assert "<b>bad</b>" not in bad_population.text

    taken = await client.post(
        f"/console/panels/{panel.id}", data={**base, "slug": "taken", "populations": "eur"}
    )
    assert taken.status_code == 409
    assert "A reference panel with slug &#39;taken&#39; already exists" in taken.text

    empty = await client.post(
        f"/console/panels/{panel.id}", data={**base, "display_name": "", "populations": ""}
    )
    assert empty.status_code == 422

    row = await panel_row(runtime, panel.id)
    assert row is not None
    assert row.slug == "hrc"
    assert row.display_name == "HRC"
    assert row.populations == ["afr", "eur", "mixed"]

    hostile = await client.post(
        f"/console/panels/{panel.id}", data={**base, "display_name": HOSTILE, "populations": ""}
    )
    assert hostile.status_code == 303
    listing = await client.get("/console/panels")
    assert HOSTILE not in listing.text
    assert ESCAPED in listing.text


async def test_deactivate_and_activate_a_panel(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc")
    assert await offered_slugs(client, alice) == ["hrc"]

    off = await client.post(
        f"/console/panels/{panel.id}/deactivate", data={"csrf_token": admin_csrf}
    )
    assert off.status_code == 303
    page = await client.get(off.headers["location"])
    assert "The panel is inactive" in page.text
    assert await offered_slugs(client, alice) == []
    listing = await client.get("/console/panels")
    assert ">inactive</span>" in listing.text

    on = await client.post(f"/console/panels/{panel.id}/activate", data={"csrf_token": admin_csrf})
    assert "The panel is active" in (await client.get(on.headers["location"])).text
    assert await offered_slugs(client, alice) == ["hrc"]

    forged = await client.post(
        f"/console/panels/{panel.id}/deactivate", data={"csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert await offered_slugs(client, alice) == ["hrc"]
    missing = await client.post("/console/panels/nope/deactivate", data={"csrf_token": admin_csrf})
    assert missing.status_code == 404


async def test_a_panel_cannot_be_activated_for_a_build_its_service_dropped(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    service = await make_service(runtime, slug="michigan", supported_builds=["hg38"])
    panel = await make_panel(runtime, service, slug="old-hg19", build="hg19", is_active=False)
    answer = await client.post(
        f"/console/panels/{panel.id}/activate", data={"csrf_token": admin_csrf}
    )
    assert answer.status_code == 422
    assert "does not support build hg19" in answer.text
    row = await panel_row(runtime, panel.id)
    assert row is not None
    assert not row.is_active


# --- importing a local-engine panel ---------------------------------------------------------


def panel_bytes(**fields: Any) -> bytes:
    compression = fields.pop("compression", "bgzf")
    return vcf.compress(panel_text(**fields), compression)


async def local_service(runtime: Runtime) -> Service:
    return await make_service(
        runtime, name="Local engine", slug="local", api_type="local", supported_builds=[]
    )


def store(runtime: Runtime) -> PanelStore:
    return PanelStore.in_engine_dir(runtime.settings.resolved_engine_dir)


def leftovers(runtime: Runtime) -> list[Path]:
    imports = runtime.settings.resolved_engine_dir / "imports"
    return list(imports.iterdir()) if imports.exists() else []


def import_form(csrf: str, file_id: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "file_id": file_id,
        "service": "local",
        "display_name": "Tiny panel",
        "panel_id": "tiny",
        "build": "hg19",
        "populations": "eur, afr",
        "description": "",
        **fields,
    }


async def test_import_a_local_panel_from_a_stored_file(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    await local_service(runtime)
    stored = await make_file(
        runtime, admin.id, panel_bytes(records={"20": 40, "21": 25}), filename="tiny.vcf.gz"
    )
    page = await client.get("/console/panels/import", params={"file": stored.id})
    assert page.status_code == 200
    assert f'<option value="{stored.id}" selected>tiny.vcf.gz' in page.text
    assert 'src="/static/js/console_panels.js"' in page.text

    answer = await client.post("/console/panels/import", data=import_form(admin_csrf, stored.id))
    assert answer.status_code == 200, answer.text
    assert "Panel imported" in answer.text
    assert "6 samples, 65 variants, contigs 20, 21" in answer.text
    assert "The import took" in answer.text

    meta = store(runtime).load("tiny")
    assert (meta.sample_count, meta.variant_count, meta.contigs) == (6, 65, ("20", "21"))
    assert meta.populations == ("eur", "afr")
    assert meta.extra["source"] == f"stored file {stored.id} (tiny.vcf.gz)"
    installed = store(runtime).directory("tiny")
    assert (installed / "panel.vcf.gz").read_bytes() == panel_bytes(records={"20": 40, "21": 25})
    assert (installed / "panel.vcf.gz.tbi").is_file()
    assert leftovers(runtime) == []

    offered = (await client.get(PANELS_API, headers=alice.headers)).json()
    assert [(p["slug"], p["panel_id"], p["sample_count"], p["variant_count"]) for p in offered] == [
        ("tiny", "tiny", 6, 65)
    ]
    assert offered[0]["contigs"] == ["20", "21"]
    assert "panel_imported" in await audit_actions(runtime)
    listing = await client.get("/console/panels", params={"service": "local"})
    assert "Tiny panel" in listing.text

    # The same id again is refused unless "replace" is ticked.
    again = await client.post("/console/panels/import", data=import_form(admin_csrf, stored.id))
    assert again.status_code == 422
    assert "already has a reference panel &#39;tiny&#39;" in again.text
    replaced = await client.post(
        "/console/panels/import",
        data=import_form(admin_csrf, stored.id, display_name="Tiny panel v2", replace="on"),
    )
    assert replaced.status_code == 200
    assert "Panel replaced" in replaced.text
    (row,) = (await client.get(PANELS_API, headers=alice.headers)).json()
    assert row["display_name"] == "Tiny panel v2"


async def test_a_file_that_cannot_be_a_panel_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    await local_service(runtime)
    cases = [
        (panel_bytes(records={"20": 10}, compression="none"), "is not compressed"),
        (panel_bytes(records={"20": 10}, compression="gzip"), "plain gzip, not bgzip"),
        (panel_bytes(records={"20": 10}, separator="/"), "is not phased"),
        (panel_bytes(records={"20": 10}, missing_at=3), "has a missing genotype"),
        (panel_bytes(records={"20": 10}, samples=0), "has no samples"),
        (panel_bytes(records={"20": 10}, build="hg38"), "is a hg38 panel"),
    ]
    for content, message in cases:
        stored = await make_file(runtime, admin.id, content, filename="bad.vcf.gz", validation=None)
        answer = await client.post(
            "/console/panels/import", data=import_form(admin_csrf, stored.id)
        )
        assert answer.status_code == 422, (message, answer.status_code)
        assert message in answer.text, message
        assert "bad.vcf.gz" in answer.text  # the file as the admin knows it
        assert "panel.vcf.gz" not in answer.text  # not the hub's working copy
        assert 'value="Tiny panel"' in answer.text  # what was typed comes back
    assert store(runtime).list() == []
    assert not store(runtime).directory("tiny").exists()
    assert leftovers(runtime) == []
    assert await offered_slugs(client, alice) == []
    assert "panel_imported" not in await audit_actions(runtime)


async def test_bad_import_fields_are_refused_before_the_file_is_read(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    await local_service(runtime)
    remote = await make_service(runtime, slug="michigan")
    stored = await make_file(runtime, admin.id, panel_bytes(records={"20": 10}))
    alices = await make_file(runtime, alice.id, panel_bytes(records={"20": 10}))
    cases = [
        ({"panel_id": "Not An Id!"}, "is not a valid panel id", "panel_id"),
        ({"display_name": ""}, "Give the panel a display name.", "display_name"),
        ({"build": "hg18"}, "Build must be one of hg19, hg38.", "build"),
        ({"populations": HOSTILE}, "Each population must be", "populations"),
        ({"service": remote.slug}, "panels can be imported only into a service of type", "service"),
        ({"file_id": "no-such-file"}, "File no-such-file not found.", "file_id"),
        ({"file_id": ""}, "Choose the uploaded panel file.", "file_id"),
    ]
    for change, message, field in cases:
        answer = await client.post(
            "/console/panels/import", data={**import_form(admin_csrf, stored.id), **change}
        )
        assert answer.status_code in (400, 404, 422), (change, answer.status_code)
        assert message in answer.text, (change, answer.text[-3000:])
        assert f'id="{field}-error"' in answer.text
        assert HOSTILE not in answer.text
    assert store(runtime).list() == []
    assert await offered_slugs(client, alice) == []
    # An admin may import from any stored file (admins see every file), alice's too.
    taken = await client.post(
        "/console/panels/import", data=import_form(admin_csrf, alices.id, panel_id="from-alice")
    )
    assert taken.status_code == 200
    assert await offered_slugs(client, alice) == ["from-alice"]


async def test_without_a_local_engine_the_import_page_says_so(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    await make_service(runtime, slug="michigan")
    page = await client.get("/console/panels/import")
    assert page.status_code == 200
    assert "No local engine service is registered" in page.text
    assert "Import a panel into the local engine" not in (await client.get("/console/panels")).text


async def test_a_panel_uploaded_through_the_pages_uploader_is_imported(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    """The page's script sends the file through the resumable upload routes (upload.js);
    the import takes the file they stored."""
    await local_service(runtime)
    content = panel_bytes(records={"20": 12})
    writes = {"X-CSRF-Token": admin_csrf}
    started = await client.post(
        "/app/api/v1/uploads/init",
        json={"filename": "sent.vcf.gz", "size": len(content)},
        headers=writes,
    )
    assert started.status_code == 201, started.text
    upload_id = started.json()["upload_id"]
    sent = await client.put(
        f"/app/api/v1/uploads/{upload_id}/part/0", content=content, headers=writes
    )
    assert sent.status_code == 200, sent.text
    done = await client.post(f"/app/api/v1/uploads/{upload_id}/complete", headers=writes)
    assert done.status_code == 201, done.text
    file_id = done.json()["id"]

    page = await client.get("/console/panels/import", params={"file": file_id})
    assert f'<option value="{file_id}" selected>sent.vcf.gz' in page.text
    answer = await client.post(
        "/console/panels/import", data=import_form(admin_csrf, file_id, panel_id="sent")
    )
    assert answer.status_code == 200, answer.text
    assert "6 samples, 12 variants, contigs 20" in answer.text
    assert await offered_slugs(client, alice) == ["sent"]
