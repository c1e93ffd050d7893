"""The console's audit log: entries with readable details, filters, paging with the total,
and bad filter values answered with a message on the page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from imputehub.monitoring import audit
from imputehub.runtime import Runtime


async def entries(runtime: Runtime, *rows: dict[str, Any]) -> None:
    async with runtime.db.session() as session:
        for row in rows:
            fields = {"now": runtime.clock.now(), "actor": "admin", **row}
            await audit.record(session, **fields)


async def test_entries_show_with_readable_details_escaped(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await entries(
        runtime,
        {
            "action": "hub_settings_changed",
            "target_type": "hub",
            "target_id": "settings",
            "origin": audit.Origin(client_ip="203.0.113.7"),
            "details": {
                "changed": {
                    "signup_mode": {"from": "closed", "to": "open"},
                    "maintenance_message": {"from": "", "to": "<img src=x onerror=alert(1)>"},
                }
            },
        },
    )
    page = await client.get("/console/audit")
    assert page.status_code == 200
    text = page.text
    assert "hub_settings_changed" in text
    assert "203.0.113.7" in text
    assert "<dt>changed.signup_mode</dt><dd>closed \u2192 open</dd>" in text
    assert "(none) \u2192 &lt;img src=x onerror=alert(1)&gt;" in text
    assert "<img src=x" not in text
    assert "hub: <span" in text


async def test_filters_and_paging_with_the_total(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    now = runtime.clock.now()
    await entries(
        runtime,
        *[
            {
                "action": "login_failed",
                "actor": "mallory",
                "outcome": "failure",
                "now": now - timedelta(minutes=n),
                "details": {"attempt": n},
            }
            for n in range(55)
        ],
        {
            "action": "job_cancelled_by_admin",
            "target_type": "job",
            "target_id": "job-1",
            "now": now - timedelta(days=3),
        },
    )
    # Signing in as the admin wrote entries of its own; count only ours.
    failed = await client.get("/console/audit", params={"action": "login_failed"})
    assert "55 entries match the filters · page 1 of 2." in failed.text
    assert failed.text.count('<th scope="row">login_failed</th>') == 50
    assert 'href="/console/audit?action=login_failed&amp;page=2"' in failed.text
    second = await client.get("/console/audit", params={"action": "login_failed", "page": "2"})
    assert second.text.count('<th scope="row">login_failed</th>') == 5
    assert "<dt>attempt</dt><dd>54</dd>" in second.text  # oldest last

    by_target = await client.get("/console/audit", params={"target": "job:job-1"})
    assert "1 entry matches the filters." in by_target.text
    assert "job_cancelled_by_admin" in by_target.text

    by_actor = await client.get("/console/audit", params={"actor": "mallory", "outcome": "failure"})
    assert "55 entries match" in by_actor.text
    assert '<option value="failure" selected>' in by_actor.text

    today = now.date().isoformat()
    recent = await client.get(
        "/console/audit", params={"action": "job_cancelled_by_admin", "since": today}
    )
    assert "0 entries match the filters." in recent.text
    assert "No entry matches the filters." in recent.text
    three_days_ago = (now - timedelta(days=3)).date().isoformat()
    that_day = await client.get(
        "/console/audit",
        params={
            "action": "job_cancelled_by_admin",
            "since": three_days_ago,
            "until": three_days_ago,
        },
    )
    assert "1 entry matches the filters." in that_day.text


async def test_bad_filters_give_the_page_with_a_message(
    client: httpx.AsyncClient, admin_csrf: str
) -> None:
    for params, words in (
        ({"since": "yesterday"}, "Since must be a date such as 2026-12-03"),
        ({"until": "2026-13-45"}, "Until must be a date such as"),
        ({"since": "2026-12-03", "until": "2026-12-01"}, "Until must be after since."),
        ({"outcome": "<script>"}, "Outcome must be one of: success, failure, denied."),
        ({"page": "-1"}, "Page must be a whole number from 1."),
        ({"actor": "x" * 150}, "Actor must be at most 100 characters."),
    ):
        page = await client.get("/console/audit", params=params)
        assert page.status_code == 422, params
        assert words in page.text, params
        assert "<script>" not in page.text.split("<main", 1)[1]
        assert 'id="audit-since"' in page.text  # the form is still there
