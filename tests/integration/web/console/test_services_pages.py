"""The console's service pages over HTTP: the list with health and load, registering each kind
through its form, editing, the platform credential, check now, sync panels, pause/resume and
deactivation, as an admin sees them; mistakes come back as the form with nothing stored."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.connectors.base import Health, HealthStatus, PanelInfo, ServiceInfo
from imputehub.db.models import AuditEntry, Service, ServiceHealthCheck
from imputehub.domain.errors import TransientServiceError
from imputehub.domain.jobs import JobStatus, Step
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.verifying_connector import VerifyingConnector
from tests.support.web import sign_in

HOSTILE = '<script>alert("x")</script>'
PLATFORM = "platform-token-that-must-never-show-Zq81"


class ConsoleConnector(VerifyingConnector):
    """Healthy (or what it is told), lists the panels it is told, verifies known tokens."""

    def __init__(self) -> None:
        super().__init__(tokens={PLATFORM: None})
        self.health = Health(status=HealthStatus.HEALTHY, response_time_ms=42.0, queue_size=7)
        self.panels: list[PanelInfo] = []
        self.list_error: Exception | None = None

    async def check_health(self, service: ServiceInfo) -> Health:
        return self.health

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        if self.list_error is not None:
            raise self.list_error
        return list(self.panels)


@pytest.fixture
def connector(runtime: Runtime) -> ConsoleConnector:
    fake = ConsoleConnector()
    connectors: dict[str, Any] = {
        "michigan": fake,
        "ga4gh_wes": fake,
        "dnastack": fake,
        "local": fake,
    }
    runtime.connectors = connectors
    return fake


async def post(client: httpx.AsyncClient, path: str, csrf: str, **data: Any) -> httpx.Response:
    return await client.post(path, data={"csrf_token": csrf, **data})


async def stored(runtime: Runtime, slug: str) -> Service | None:
    async with runtime.db.session() as session:
        found: Service | None = await session.scalar(select(Service).where(Service.slug == slug))
        return found


async def count_services(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Service)) or 0)


async def audit_entries(runtime: Runtime, action: str) -> list[AuditEntry]:
    async with runtime.db.session() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def api_service(client: httpx.AsyncClient, admin: Actor, slug: str) -> dict[str, Any]:
    listed = await client.get("/api/v1/services", params={"all": "true"}, headers=admin.headers)
    found = [s for s in listed.json() if s["slug"] == slug]
    assert found, listed.text
    result: dict[str, Any] = found[0]
    return result


def text_of(page: httpx.Response) -> str:
    return html.unescape(page.text)


# --- the list --------------------------------------------------------------------------


async def test_the_list_shows_every_service_with_its_health_and_load(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor, admin_csrf: str
) -> None:
    busy = await factories.make_service(
        runtime,
        slug="michigan",
        name="Michigan Server",
        response_time_ms=123.0,
        queue_size=17,
        credential_encrypted=runtime.vault.encrypt(PLATFORM),
        api_config={"max_jobs_per_user": 3},
    )
    await factories.make_service(
        runtime, slug="old-wes", name="Old WES", api_type="ga4gh_wes", is_active=False
    )
    await factories.make_service(
        runtime, slug="paused-one", name="Paused One", is_paused=True, health_status="unhealthy"
    )
    panel = await factories.make_panel(runtime, busy)
    stored_file = await factories.make_file(runtime, alice.id)
    # One job at the service holding a slot, one waiting in the hub.
    await factories.make_job(
        runtime,
        user_id=alice.id,
        service=busy,
        panel=panel,
        files=[stored_file],
        status=JobStatus.RUNNING.value,
        submit_started_at=runtime.clock.now(),
        next_step=Step.POLL.value,
    )
    await factories.make_job(
        runtime, user_id=alice.id, service=busy, panel=panel, files=[stored_file]
    )

    page = await client.get("/console/services")

    assert page.status_code == 200
    rows = {
        slug: chunk
        for chunk in page.text.split("<tr")[2:]
        for slug in ("michigan", "old-wes", "paused-one")
        if f'href="/console/services/{slug}"' in chunk
    }
    assert set(rows) == {"michigan", "old-wes", "paused-one"}
    assert "123 ms" in rows["michigan"]
    assert ">17<" in rows["michigan"]  # the service's own queue
    assert ">2<" in rows["michigan"]  # the hub's active jobs
    assert "1 / 3" in rows["michigan"]  # slots in use / limit
    assert ">set<" in rows["michigan"]
    assert "active" in rows["michigan"]
    assert "healthy" in rows["michigan"]
    assert "deactivated" in rows["old-wes"]
    assert "no limit" in rows["old-wes"]  # WES has no slot limit unless set
    assert "not set" in rows["old-wes"]
    assert "paused" in rows["paused-one"]
    assert "unhealthy" in rows["paused-one"]
    assert "0 / 2" in rows["paused-one"]  # Michigan's default limit
    assert 'href="/console/services/new?kind=dnastack"' in page.text


# --- registering ------------------------------------------------------------------------


COMMON = {
    "description": "A test service.",
    "location": "Cape Town, South Africa",
    "supported_builds": ["hg19", "hg38"],
    "max_upload_size": "5G",
    "job_time_limit": "24",
    "slot_limit": "3",
}


@pytest.mark.parametrize(
    ("kind", "fields", "config"),
    [
        (
            "michigan",
            {
                "name": "TOPMed",
                "base_url": "https://imputation.biodatacatalyst.nhlbi.nih.gov",
                "cfg_app": "imputationserver2",
                "cfg_aes_encryption": "on",
            },
            {"app": "imputationserver2", "aes_encryption": True, "max_jobs_per_user": 3},
        ),
        (
            "ga4gh_wes",
            {
                "name": "ILIFU WES",
                "base_url": "https://wes.ilifu.ac.za/ga4gh/wes/v1",
                "cfg_workflow_type": "CWL",
                "cfg_workflow_engine": "cwltool",
                "cfg_workflow_engine_parameters": '{"--outdir": "out"}',
                "cfg_auth": "oauth2",
                "cfg_token_url": "https://auth.ilifu.ac.za/token",
                "cfg_client_id": "imputehub",
                "cfg_inputs_as": "url",
                "cfg_panels": '[{"panel_id": "h3a", "display_name": "H3Africa", "build": "hg38"}]',
            },
            {
                "workflow_type": "CWL",
                "workflow_engine": "cwltool",
                "workflow_engine_parameters": {"--outdir": "out"},
                "auth": "oauth2",
                "token_url": "https://auth.ilifu.ac.za/token",
                "client_id": "imputehub",
                "inputs_as": "url",
                "panels": [{"panel_id": "h3a", "display_name": "H3Africa", "build": "hg38"}],
                "max_jobs_per_user": 3,
            },
        ),
        (
            "dnastack",
            {
                "name": "DNAstack Workbench",
                "base_url": "https://workspaces.dnastack.com/api/ewes",
                "cfg_namespace": "team-1",
                "cfg_token_url": "https://passport.dnastack.com/oauth/token",
                "cfg_client_id": "hub-client",
                "cfg_workflow_url": "123/impute",
                "cfg_audience": "https://workspaces.dnastack.com",
            },
            {
                "namespace": "team-1",
                "token_url": "https://passport.dnastack.com/oauth/token",
                "client_id": "hub-client",
                "workflow_url": "123/impute",
                "audience": "https://workspaces.dnastack.com",
                "max_jobs_per_user": 3,
            },
        ),
        (
            "local",
            {"name": "Local engine two", "base_url": "http://localhost"},
            {"max_jobs_per_user": 3},
        ),
    ],
)
async def test_each_kind_registers_through_its_form(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    admin_csrf: str,
    connector: ConsoleConnector,
    kind: str,
    fields: dict[str, str],
    config: dict[str, Any],
) -> None:
    form = await client.get("/console/services/new", params={"kind": kind})
    assert form.status_code == 200
    for name in fields:
        assert f'name="{name}"' in form.text, name

    answer = await post(
        client, f"/console/services/new?kind={kind}", admin_csrf, **COMMON, **fields
    )

    assert answer.status_code == 303, answer.text
    slug = answer.headers["location"].split("/")[3].split("?")[0]
    shown = await client.get(answer.headers["location"])
    assert "The service was registered" in shown.text
    assert fields["name"] in shown.text
    listed = await api_service(client, admin, slug)
    assert listed["api_type"] == kind
    assert listed["api_config"] == config
    assert listed["supported_builds"] == ["hg19", "hg38"]
    assert listed["max_upload_size"] == 5 * 1024**3
    assert listed["job_time_limit_seconds"] == 86400
    assert listed["location"] == "Cape Town, South Africa"
    assert listed["credential_set"] is False
    entries = await audit_entries(runtime, "service_created")
    assert [e.target_id for e in entries] == [listed["id"]]
    assert entries[0].details["slug"] == slug
    assert "api_config" in entries[0].details["fields"]


async def test_a_credential_given_at_registration_is_stored_not_shown(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    answer = await post(
        client,
        "/console/services/new?kind=michigan",
        admin_csrf,
        name="Michigan",
        base_url="https://imputationserver.sph.umich.edu",
        credential=PLATFORM,
    )

    assert answer.status_code == 303
    page = await client.get(answer.headers["location"])
    assert PLATFORM not in page.text
    assert "set, not verified" in page.text
    assert (await api_service(client, admin, "michigan"))["credential_set"] is True
    entry = (await audit_entries(runtime, "service_created"))[0]
    assert "credential" in entry.details["fields"]
    assert PLATFORM not in str(entry.details)


@pytest.mark.parametrize(
    ("kind", "fields", "field_id", "message"),
    [
        ("michigan", {"name": "X", "base_url": "ftp://example.org"}, "base_url", "http://"),
        ("michigan", {"name": "X", "base_url": "https://a.org/?q=1"}, "base_url", "query"),
        ("michigan", {"name": "", "base_url": "https://a.org"}, "name", "must not be empty"),
        (
            "dnastack",
            {"name": "D", "base_url": "https://a.org", "cfg_token_url": "https://t.org"},
            "cfg_namespace",
            "Namespace is required",
        ),
        (
            "ga4gh_wes",
            {"name": "W", "base_url": "https://a.org", "cfg_panels": "{not json"},
            "cfg_panels",
            "not valid JSON",
        ),
        (
            "ga4gh_wes",
            {"name": "W", "base_url": "https://a.org", "cfg_token_url": "token"},
            "cfg_token_url",
            "must be an http",
        ),
        (
            "michigan",
            {"name": "M", "base_url": "https://a.org", "slot_limit": "two"},
            "slot_limit",
            "whole number",
        ),
        (
            "michigan",
            {"name": "M", "base_url": "https://a.org", "max_upload_size": "lots"},
            "max_upload_size",
            "size such as",
        ),
        (
            "ga4gh_wes",
            {"name": "W", "base_url": "https://a.org", "cfg_extra_params": '{"api_key": "k"}'},
            "api_config",
            "looks like a secret",
        ),
        (
            "michigan",
            {"name": "M", "base_url": "https://a.org", "slug": "Not A Slug"},
            "slug",
            "lowercase",
        ),
    ],
)
async def test_a_mistake_comes_back_next_to_its_field_and_nothing_is_stored(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin_csrf: str,
    kind: str,
    fields: dict[str, str],
    field_id: str,
    message: str,
) -> None:
    answer = await post(client, f"/console/services/new?kind={kind}", admin_csrf, **fields)

    assert answer.status_code == 422, answer.text
    assert f'id="{field_id}-error"' in answer.text
    error = answer.text.split(f'id="{field_id}-error">')[1].split("</p>")[0]
    assert message in html.unescape(error)
    assert await count_services(runtime) == 0
    # What was typed is kept (the name at least), so only the mistake needs fixing.
    if fields["name"]:
        assert f'value="{fields["name"]}"' in answer.text


async def test_a_taken_slug_is_refused_on_its_field(
    runtime: Runtime, client: httpx.AsyncClient, admin_csrf: str
) -> None:
    await factories.make_service(runtime, slug="michigan")

    answer = await post(
        client,
        "/console/services/new?kind=michigan",
        admin_csrf,
        name="Michigan",
        base_url="https://a.org",
    )

    assert answer.status_code == 409
    assert "already exists" in answer.text.split('id="slug-error">')[1].split("</p>")[0]
    assert await count_services(runtime) == 1


async def test_a_hostile_name_is_stored_as_text_and_shown_escaped(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    answer = await post(
        client,
        "/console/services/new?kind=michigan",
        admin_csrf,
        name=f"Evil {HOSTILE}",
        slug="evil",
        base_url="https://a.org",
        description=HOSTILE,
    )

    assert answer.status_code == 303
    for path in ("/console/services", "/console/services/evil", "/console/services/evil/edit"):
        page = await client.get(path)
        assert HOSTILE not in page.text, path
        assert "&lt;script&gt;" in page.text, path
    assert (await api_service(client, admin, "evil"))["name"] == f"Evil {HOSTILE}"
    # A hostile value in a form that comes back is escaped too.
    again = await post(
        client,
        "/console/services/new?kind=michigan",
        admin_csrf,
        name=HOSTILE,
        base_url="not a url",
    )
    assert again.status_code == 422
    assert HOSTILE not in again.text


async def test_an_unknown_kind_offers_the_kinds(client: httpx.AsyncClient, admin_csrf: str) -> None:
    page = await client.get("/console/services/new", params={"kind": "carrier-pigeon"})

    assert page.status_code == 200
    for kind in ("michigan", "ga4gh_wes", "dnastack", "local"):
        assert f'href="/console/services/new?kind={kind}"' in page.text
    refused = await post(client, "/console/services/new?kind=carrier-pigeon", admin_csrf)
    assert refused.status_code == 404


# --- editing ----------------------------------------------------------------------------


async def test_an_edit_changes_what_differs_and_keeps_unshown_settings(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    learnt = {
        "app": "imputationserver2",
        "phasing": ["eagle", "no_phasing"],
        "r2_filter": [0, 0.3],
        "max_jobs_per_user": 3,
    }
    service = await factories.make_service(
        runtime, slug="michigan", name="Michigan", api_config=learnt, location="Ann Arbor"
    )
    form = await client.get("/console/services/michigan/edit")
    assert form.status_code == 200
    assert 'value="Michigan"' in form.text
    assert 'value="3"' in form.text  # the slot limit
    assert 'value="imputationserver2"' in form.text

    answer = await post(
        client,
        "/console/services/michigan/edit",
        admin_csrf,
        name="Michigan Imputation Server",
        slug="michigan",
        base_url="https://imputation.example.org",
        location="Ann Arbor, USA",
        supported_builds=["hg19", "hg38"],
        slot_limit="3",
        cfg_app="imputationserver2",
        cfg_aes_encryption="on",
    )

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/services/michigan?done=updated"
    listed = await api_service(client, admin, "michigan")
    assert listed["name"] == "Michigan Imputation Server"
    assert listed["location"] == "Ann Arbor, USA"
    assert listed["api_config"] == {**learnt, "aes_encryption": True}
    entries = await audit_entries(runtime, "service_updated")
    assert [e.target_id for e in entries] == [service.id]
    assert entries[0].details["fields"] == ["api_config", "location", "name"]


async def test_an_edit_that_empties_a_shown_setting_removes_it_and_a_mistake_stores_nothing(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    await factories.make_service(
        runtime,
        slug="wes",
        name="WES",
        api_type="ga4gh_wes",
        api_config={"workflow_engine": "cwltool", "params": {"inputs": "vcfs"}},
    )
    base = {"name": "WES", "base_url": "https://imputation.example.org"}

    bad = await post(
        client, "/console/services/wes/edit", admin_csrf, **base, cfg_panels="[1", slug="wes"
    )
    assert bad.status_code == 422
    assert (await api_service(client, admin, "wes"))["api_config"]["workflow_engine"] == "cwltool"

    ok = await post(
        client,
        "/console/services/wes/edit",
        admin_csrf,
        **base,
        supported_builds=["hg19", "hg38"],
        cfg_params='{"inputs": "vcfs"}',
    )
    assert ok.status_code == 303, ok.text
    assert (await api_service(client, admin, "wes"))["api_config"] == {"params": {"inputs": "vcfs"}}


async def test_an_edit_with_nothing_changed_says_so_and_audits_nothing(
    runtime: Runtime, client: httpx.AsyncClient, admin_csrf: str
) -> None:
    await factories.make_service(runtime, slug="michigan", name="Michigan")
    form = await client.get("/console/services/michigan/edit")
    assert form.status_code == 200

    answer = await post(
        client,
        "/console/services/michigan/edit",
        admin_csrf,
        name="Michigan",
        slug="michigan",
        base_url="https://imputation.example.org",
        supported_builds=["hg19", "hg38"],
    )

    assert answer.headers["location"] == "/console/services/michigan?done=unchanged"
    assert await audit_entries(runtime, "service_updated") == []


async def test_an_edit_of_an_unknown_service_is_404(
    client: httpx.AsyncClient, admin_csrf: str
) -> None:
    assert (await client.get("/console/services/nope/edit")).status_code == 404
    assert (await client.get("/console/services/nope")).status_code == 404


# --- the service's page -----------------------------------------------------------------


async def test_the_page_charts_the_health_history_and_lists_the_checks(
    runtime: Runtime, client: httpx.AsyncClient, clock: FakeClock, admin_csrf: str
) -> None:
    service = await factories.make_service(runtime, slug="michigan", name="Michigan")
    start = clock.now()
    async with runtime.db.session() as session:
        for minutes, status, ms, message in [
            (0, "healthy", 80.0, None),
            (5, "unhealthy", None, "the service did not answer within 5 seconds"),
            (10, "healthy", 120.0, None),
        ]:
            session.add(
                ServiceHealthCheck(
                    service_id=service.id,
                    checked_at=start + timedelta(minutes=minutes),
                    status=status,
                    response_time_ms=ms,
                    message=message,
                )
            )

    page = await client.get("/console/services/michigan")

    assert page.status_code == 200
    assert "<svg" in page.text
    assert "Response time of the last 3 health checks" in page.text
    assert page.text.count('class="failed-check"') == 1
    assert "1 of the checks failed" in page.text
    table = page.text.split('class="stack checks-table"')[1]
    assert "the service did not answer within 5 seconds" in table
    assert "120 ms" in table
    assert "80 ms" in table
    assert 'href="/console/panels?service=michigan"' in page.text
    assert 'href="/console/services/michigan/self-test"' in page.text


async def test_check_now_asks_the_service_and_shows_its_answer(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin_csrf: str,
    connector: ConsoleConnector,
) -> None:
    await factories.make_service(runtime, slug="michigan", health_status="unknown")

    answer = await post(client, "/console/services/michigan/check", admin_csrf)

    assert answer.status_code == 200
    assert "Checked now: healthy, 42 ms, 7 jobs in the service&#39;s queue." in answer.text
    listed = await client.get("/console/services")
    assert "42 ms" in listed.text
    connector.health = Health(status=HealthStatus.UNHEALTHY, message=f"down {HOSTILE}")
    again = await post(client, "/console/services/michigan/check", admin_csrf)
    notice = text_of(again).split('class="notice" role="status">')[1].split("</p>")[0]
    assert notice.startswith("Checked now: unhealthy")
    assert notice.endswith(f"The service said: down {HOSTILE}.")
    assert HOSTILE not in again.text
    assert again.text.count('class="failed-check"') == 1


async def test_sync_panels_lists_what_was_added_updated_deactivated_and_skipped(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin_csrf: str,
    connector: ConsoleConnector,
) -> None:
    service = await factories.make_service(runtime, slug="michigan")
    await factories.make_panel(
        runtime, service, slug="hapmap", panel_id="apps@hapmap@2", display_name="old name"
    )
    await factories.make_panel(runtime, service, slug="gone", panel_id="apps@gone@1")
    connector.panels = [
        PanelInfo(panel_id="apps@hapmap@2", display_name="HapMap 2", build="hg19"),
        PanelInfo(panel_id="apps@topmed-r3@1", display_name="TOPMed r3", build="hg38"),
        PanelInfo(panel_id="apps@odd@1", display_name="Odd", build="hg17"),
    ]

    answer = await post(client, "/console/services/michigan/sync-panels", admin_csrf)

    assert answer.status_code == 200, answer.text
    sections = {part.split("</h2>")[0]: part for part in answer.text.split('<h2 id="sync-')[1:]}
    by_heading = {key.split(">")[1]: value for key, value in sections.items()}
    assert "topmed-r3" in by_heading["Added (1)"]
    assert "hapmap" in by_heading["Updated (1)"]
    assert "gone" in by_heading["Deactivated (1)"]
    assert "apps@odd@1" in by_heading["Skipped (1)"]

    connector.list_error = TransientServiceError("the server is down for maintenance")
    failed = await post(client, "/console/services/michigan/sync-panels", admin_csrf)
    assert failed.status_code == 503
    assert "The panels could not be synced: The server is down for maintenance." in failed.text


async def test_the_platform_credential_is_saved_tested_and_deleted_never_shown(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    admin_csrf: str,
    connector: ConsoleConnector,
) -> None:
    service = await factories.make_service(runtime, slug="michigan")
    path = "/console/services/michigan/credential"

    saved = await post(client, path, admin_csrf, credential=PLATFORM)

    assert saved.status_code == 200
    assert PLATFORM not in saved.text
    assert "The credential was saved. The service accepted the credential" in saved.text
    assert "set, accepted by the service" in saved.text
    assert connector.seen == [PLATFORM]
    assert (await api_service(client, admin, "michigan"))["credential_set"] is True
    entries = await audit_entries(runtime, "credential_set")
    assert [(e.target_id, e.details) for e in entries] == [(service.id, {"scope": "platform"})]

    wrong = await post(client, path, admin_csrf, credential="some-other-token-1234")
    assert "The service refused the credential" in wrong.text
    assert "some-other-token-1234" not in wrong.text
    assert "set, refused by the service" in wrong.text

    empty = await post(client, path, admin_csrf, credential="   ")
    assert empty.status_code == 422
    assert 'id="credential-error"' in empty.text

    tested = await post(client, f"{path}/verify", admin_csrf)
    assert tested.status_code == 200
    assert "The service refused the credential" in tested.text

    deleted = await post(client, f"{path}/delete", admin_csrf)
    assert deleted.status_code == 303
    page = await client.get(deleted.headers["location"])
    assert "The platform credential was deleted." in page.text
    assert (await api_service(client, admin, "michigan"))["credential_set"] is False
    assert len(await audit_entries(runtime, "credential_deleted")) == 1
    nothing = await post(client, f"{path}/verify", admin_csrf)
    assert nothing.status_code == 409
    assert "This service has no platform credential; set one first." in nothing.text


async def test_pause_and_resume_show_and_are_audited(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    service = await factories.make_service(runtime, slug="michigan", name="Michigan")

    paused = await post(client, "/console/services/michigan/pause", admin_csrf)

    assert paused.status_code == 303
    page = await client.get(paused.headers["location"])
    assert "The service is paused: its new jobs wait in the hub." in page.text
    assert 'action="/console/services/michigan/resume"' in page.text
    assert (await api_service(client, admin, "michigan"))["is_paused"] is True
    assert "paused" in (await client.get("/console/services")).text

    resumed = await post(client, "/console/services/michigan/resume", admin_csrf)
    page = await client.get(resumed.headers["location"])
    assert "The service is resumed" in page.text
    assert (await api_service(client, admin, "michigan"))["is_paused"] is False
    assert [e.target_id for e in await audit_entries(runtime, "service_paused")] == [service.id]
    assert [e.target_id for e in await audit_entries(runtime, "service_resumed")] == [service.id]


async def test_deactivate_hides_the_service_from_users_and_activate_brings_it_back(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    admin_csrf: str,
) -> None:
    service = await factories.make_service(runtime, slug="michigan", name="Michigan")
    page = await client.get("/console/services/michigan")
    assert ">Deactivate Michigan</button>" in page.text

    answer = await post(client, "/console/services/michigan/deactivate", admin_csrf)

    assert answer.status_code == 303
    shown = await client.get(answer.headers["location"])
    assert "The service was deactivated" in shown.text
    assert (await api_service(client, admin, "michigan"))["is_active"] is False
    as_user = await client.get("/api/v1/services", headers=alice.headers)
    assert as_user.json() == []
    entries = await audit_entries(runtime, "service_deactivated")
    assert [e.target_id for e in entries] == [service.id]

    back = await post(client, "/console/services/michigan/activate", admin_csrf)
    assert back.status_code == 303
    assert (await api_service(client, admin, "michigan"))["is_active"] is True
    updated = await audit_entries(runtime, "service_updated")
    assert [e.details["fields"] for e in updated] == [["is_active"]]


async def test_a_form_without_its_csrf_token_changes_nothing(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    await factories.make_service(runtime, slug="michigan")

    answer = await client.post("/console/services/michigan/pause", data={"csrf_token": "forged"})

    assert answer.status_code == 403
    assert (await api_service(client, admin, "michigan"))["is_paused"] is False


async def test_a_user_is_refused_the_forms_and_nothing_changes(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    await factories.make_service(runtime, slug="michigan", name="Michigan")
    csrf = await sign_in(client, alice.username)

    for path, data in [
        ("/console/services/michigan/pause", {}),
        ("/console/services/michigan/deactivate", {}),
        ("/console/services/michigan/credential", {"credential": PLATFORM}),
        ("/console/services/michigan/edit", {"name": "Mine now", "base_url": "https://a.org"}),
        ("/console/services/new?kind=michigan", {"name": "X", "base_url": "https://a.org"}),
    ]:
        answer = await post(client, path, csrf, **data)
        assert answer.status_code == 403, path

    listed = await api_service(client, admin, "michigan")
    assert (listed["name"], listed["is_paused"], listed["is_active"]) == ("Michigan", False, True)
    assert listed["credential_set"] is False
    assert await count_services(runtime) == 1


async def test_a_new_slug_takes_the_admin_to_the_renamed_page(
    runtime: Runtime, client: httpx.AsyncClient, admin_csrf: str
) -> None:
    await factories.make_service(runtime, slug="michigan", name="Michigan")

    answer = await post(
        client,
        "/console/services/michigan/edit",
        admin_csrf,
        name="Michigan",
        slug="umich",
        base_url="https://imputation.example.org",
        supported_builds=["hg19", "hg38"],
    )

    assert answer.headers["location"] == "/console/services/umich?done=updated"
    assert (await client.get("/console/services/umich")).status_code == 200
    assert (await client.get("/console/services/michigan")).status_code == 404
