"""The console's hub settings: sign-up mode and allowed domains, maintenance mode and its
message; mistakes refused with a message and nothing stored; the slots per service shown."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from imputehub.db.models import AuditEntry, Job
from imputehub.domain.jobs import Step
from imputehub.operations import hub_settings
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.web import sign_in

FORM = {
    "signup_mode": "closed",
    "signup_domains": "",
    "maintenance_message": "",
    "maintenance_new_jobs": "hold",
}


async def stored(runtime: Runtime) -> hub_settings.HubSettings:
    async with runtime.db.session() as session:
        return await hub_settings.load(session)


async def post(client: httpx.AsyncClient, csrf: str, **fields: Any) -> httpx.Response:
    return await client.post("/console/settings", data={"csrf_token": csrf, **FORM, **fields})


async def test_the_page_shows_the_current_settings_and_the_slots_per_service(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await make_service(runtime, name="Michigan", slug="michigan", api_type="michigan")
    await make_service(runtime, name="TOPMed", slug="topmed", api_config={"max_jobs_per_user": 3})
    await make_service(runtime, name="Local", slug="local", api_type="local")
    page = await client.get("/console/settings")
    assert page.status_code == 200
    text = page.text
    assert 'id="signup-closed" name="signup_mode" value="closed" checked' in text
    assert "<strong>Approval:</strong> people ask for an account" in text
    assert 'id="new-jobs-hold" name="maintenance_new_jobs" value="hold" checked' in text
    assert (
        '<a href="/console/services/michigan/edit">Michigan</a></th>\n      <td class="num">2'
        in text
    )
    assert (
        '<a href="/console/services/topmed/edit">TOPMed</a></th>\n      <td class="num">3' in text
    )
    assert "no limit known" in text


async def test_changing_sign_up_mode_and_domains(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await post(
        client,
        admin_csrf,
        signup_mode="approval",
        signup_domains="uct.ac.za\n@Example.org, wits.ac.za",
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/settings?done=saved"
    settings = await stored(runtime)
    assert settings.signup_mode == "approval"
    assert settings.signup_domains == ("uct.ac.za", "example.org", "wits.ac.za")
    page = await client.get(answer.headers["location"])
    assert "The hub settings were saved." in page.text
    assert 'value="approval" checked' in page.text
    assert "uct.ac.za\nexample.org\nwits.ac.za</textarea>" in page.text
    async with runtime.db.session() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "hub_settings_changed")
        )
    assert entry is not None
    assert entry.details["changed"]["signup_mode"] == {"from": "closed", "to": "approval"}


async def test_a_bad_domain_is_refused_with_a_message_and_nothing_changes(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await post(
        client,
        admin_csrf,
        signup_mode="open",
        signup_domains="uct.ac.za\n<script>alert(1)</script>",
        maintenance="on",
    )
    assert answer.status_code == 422
    assert "Allowed e-mail domains: not a domain name:" in answer.text
    assert "<script>alert(1)" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text  # what was typed, kept
    assert 'value="open" checked' in answer.text
    assert await stored(runtime) == hub_settings.HubSettings()

    bad_mode = await post(client, admin_csrf, signup_mode="everyone")
    assert bad_mode.status_code == 422
    assert "Sign-up mode: choose one of the options." in bad_mode.text
    too_long = await post(client, admin_csrf, maintenance_message="x" * 501)
    assert too_long.status_code == 422
    assert "Maintenance message:" in too_long.text
    assert await stored(runtime) == hub_settings.HubSettings()


async def test_maintenance_shows_the_banner_and_its_end_releases_held_jobs(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str, alice: Actor
) -> None:
    hostile = "Back at 14:00 <script>alert('x')</script>"
    answer = await post(client, admin_csrf, maintenance="on", maintenance_message=hostile)
    assert answer.status_code == 303
    settings = await stored(runtime)
    assert settings.maintenance
    assert settings.holds_jobs

    # A job held in the hub meanwhile (the worker put it off until later).
    service = await make_service(runtime, slug="svc")
    panel = await make_panel(runtime, service)
    upload = await make_file(runtime, alice.id)
    now = runtime.clock.now()
    later = now.replace(year=now.year + 1)
    held = await make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[upload],
        status="queued", next_run_at=later,
    )  # fmt: skip

    client.cookies.clear()
    await sign_in(client, alice.username)
    for path in ("/", "/jobs", "/settings"):
        page = await client.get(path)
        assert "The hub is in maintenance." in page.text
        assert "Back at 14:00 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
        assert "<script>alert" not in page.text
    client.cookies.clear()
    admin_again = await sign_in(client, "admin")
    settings_page = await client.get("/console/settings")
    assert "<script>alert" not in settings_page.text
    assert 'id="maintenance" name="maintenance" value="on" checked' in settings_page.text

    ended = await post(client, admin_again, maintenance_message=hostile)
    assert ended.status_code == 303
    assert not (await stored(runtime)).maintenance
    assert "The hub is in maintenance." not in (await client.get("/")).text
    async with runtime.db.session() as session:
        job = await session.get(Job, held.id)
    assert job is not None
    assert job.next_step == Step.SUBMIT.value
    assert job.next_run_at is not None
    assert job.next_run_at <= runtime.clock.now()  # released: due now


async def test_new_jobs_can_be_refused_during_maintenance(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await post(client, admin_csrf, maintenance="on", maintenance_new_jobs="refuse")
    assert answer.status_code == 303
    assert (await stored(runtime)).refuses_jobs
    assert "New jobs are not accepted until it ends." in (await client.get("/")).text


async def test_a_user_cannot_change_the_settings(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, alice.username)
    answer = await post(client, csrf, signup_mode="open", maintenance="on")
    assert answer.status_code == 403
    assert await stored(runtime) == hub_settings.HubSettings()


async def test_a_forged_form_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await post(client, "forged", signup_mode="open")
    assert answer.status_code == 403
    assert await stored(runtime) == hub_settings.HubSettings()
