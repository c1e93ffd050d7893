"""In-app notifications and preferences through the API, fed by the real outbox and relay."""

from __future__ import annotations

import httpx

from imputehub.clock import FakeClock
from imputehub.db.models import Job
from imputehub.domain.jobs import JobStatus
from imputehub.notify import outbox, relay
from imputehub.runtime import Runtime
from tests.integration.worker.support import new_job
from tests.support.api import Actor

URL = "/api/v1/notifications"


async def happen(runtime: Runtime, job_id: str, status: JobStatus) -> None:
    """The job enters `status` (its event committed), and the relay fans it out."""
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        outbox.job_changed(session, job, status, now=runtime.clock.now(), message="")
    await relay.fan_out(runtime)


async def titles(client: httpx.AsyncClient, actor: Actor, **params: object) -> list[str]:
    response = await client.get(URL, headers=actor.headers, params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_unread_come_first_then_newest_and_marking_read_moves_them(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, clock: FakeClock
) -> None:
    job = await new_job(runtime, alice.id, name="chr20")
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
        await happen(runtime, job.id, status)
        clock.advance(60)

    page = (await client.get(URL, headers=alice.headers)).json()
    assert [i["title"] for i in page["items"]] == [
        "Job 'chr20' failed",
        "Job 'chr20' is running",
        "Job 'chr20' is queued",
    ]
    assert page["total"] == 3
    assert page["unread"] == 3
    queued = page["items"][2]

    read = await client.patch(f"{URL}/{queued['id']}/read", headers=alice.headers)
    assert read.status_code == 200
    assert read.json()["read"] is True
    assert read.json()["read_at"] is not None
    failed = page["items"][0]
    await client.patch(f"{URL}/{failed['id']}/read", headers=alice.headers)
    assert await titles(client, alice) == [
        "Job 'chr20' is running",  # the one unread
        "Job 'chr20' failed",  # then the read ones, newest first
        "Job 'chr20' is queued",
    ]
    assert await titles(client, alice, unread="true") == ["Job 'chr20' is running"]

    # Unread again on request.
    again = await client.patch(
        f"{URL}/{failed['id']}/read", headers=alice.headers, json={"read": False}
    )
    assert again.json()["read"] is False
    assert await titles(client, alice, unread="true") == [
        "Job 'chr20' failed",
        "Job 'chr20' is running",
    ]

    marked = await client.post(f"{URL}/mark-all-read", headers=alice.headers)
    assert marked.json() == {"marked": 2}
    after = (await client.get(URL, headers=alice.headers)).json()
    assert after["unread"] == 0
    assert after["total"] == 3
    assert all(item["read"] for item in after["items"])
    assert await titles(client, alice, unread="true") == []

    paged = (await client.get(URL, headers=alice.headers, params={"limit": 1, "offset": 1})).json()
    assert [i["title"] for i in paged["items"]] == ["Job 'chr20' is running"]


async def test_other_users_notifications_are_invisible_and_cannot_be_marked(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    job = await new_job(runtime, alice.id, name="alices-job")
    await happen(runtime, job.id, JobStatus.FAILED)
    (note,) = (await client.get(URL, headers=alice.headers)).json()["items"]

    assert (await client.get(URL, headers=bob.headers)).json()["items"] == []
    refused = await client.patch(f"{URL}/{note['id']}/read", headers=bob.headers)
    assert refused.status_code == 404
    assert refused.json()["code"] == "not_found"
    assert (await client.post(f"{URL}/mark-all-read", headers=bob.headers)).json() == {"marked": 0}
    # Alice's stays unread.
    assert (await client.get(URL, headers=alice.headers)).json()["unread"] == 1
    assert (await client.get(URL)).status_code == 401


async def test_preferences_are_a_full_matrix_and_the_relay_honours_them(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor
) -> None:
    shown = await client.get(f"{URL}/preferences", headers=alice.headers)
    assert shown.status_code == 200
    matrix = {(p["kind"], p["channel"]): p for p in shown.json()["preferences"]}
    assert len(matrix) == 7 * 3  # every kind on every channel
    assert matrix[("job.failed", "email")]["enabled"] is True
    assert matrix[("job.queued", "email")]["enabled"] is False  # not mailed by default
    assert matrix[("job.queued", "in_app")] == {
        "kind": "job.queued",
        "channel": "in_app",
        "enabled": True,
        "default": True,
    }

    changed = await client.patch(
        f"{URL}/preferences",
        headers=alice.headers,
        json={
            "preferences": [
                {"kind": "job.queued", "channel": "in_app", "enabled": False},
                {"kind": "job.running", "channel": "email", "enabled": True},
            ]
        },
    )
    assert changed.status_code == 200, changed.text
    after = {(p["kind"], p["channel"]): p["enabled"] for p in changed.json()["preferences"]}
    assert after[("job.queued", "in_app")] is False
    assert after[("job.running", "email")] is True
    assert len(after) == 21
    reread = await client.get(f"{URL}/preferences", headers=alice.headers)
    assert {(p["kind"], p["channel"]): p["enabled"] for p in reread.json()["preferences"]} == after

    job = await new_job(runtime, alice.id, name="quiet")
    await happen(runtime, job.id, JobStatus.QUEUED)
    await happen(runtime, job.id, JobStatus.RUNNING)
    # No in-app notice of the queued job: Alice turned it off.
    assert await titles(client, alice) == ["Job 'quiet' is running"]


async def test_unknown_kinds_or_channels_are_refused_and_nothing_changes(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    for bad in (
        {"kind": "job.exploded", "channel": "in_app", "enabled": False},
        {"kind": "job.failed", "channel": "pigeon", "enabled": False},
    ):
        refused = await client.patch(
            f"{URL}/preferences",
            headers=alice.headers,
            json={
                "preferences": [
                    {"kind": "job.failed", "channel": "in_app", "enabled": False},
                    bad,
                ]
            },
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_input"
    missing = await client.patch(f"{URL}/preferences", headers=alice.headers, json={})
    assert missing.status_code == 422
    shown = (await client.get(f"{URL}/preferences", headers=alice.headers)).json()
    kept = {(p["kind"], p["channel"]): p["enabled"] for p in shown["preferences"]}
    assert kept[("job.failed", "in_app")] is True  # the valid half was not applied either
