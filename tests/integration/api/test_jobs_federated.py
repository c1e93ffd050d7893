"""Federated jobs over the REST API: one upload, several services and panels.

Creating (all targets checked first, each refusal named, nothing half-made), reading (the
parent with its children, lists), acting (cancel, retry, delete) and who may see what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.accounts import deletion
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import (
    Event,
    Job,
    JobStatusUpdate,
    ReferencePanel,
    Service,
    StoredFile,
)
from imputehub.jobs import federated
from imputehub.notify import relay
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.support.api import PASSWORD, Actor
from tests.support.factories import make_file, make_panel, make_service


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_active_jobs_per_user": 4, "max_targets_per_job": 3})


@dataclass
class World:
    services: list[Service]
    panels: list[ReferencePanel]
    file: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    services = [await make_service(runtime, slug=slug) for slug in ("michigan", "topmed", "afgd")]
    panels = [
        await make_panel(runtime, service, slug=f"{service.slug}-panel", build="hg19")
        for service in services
    ]
    return World(services=services, panels=panels, file=await make_file(runtime, alice.id))


def body(world: World, *targets: dict[str, Any], **changes: Any) -> dict[str, Any]:
    chosen = targets or tuple(
        {"service_id": s.slug, "reference_panel_id": p.slug}
        for s, p in zip(world.services[:2], world.panels[:2], strict=True)
    )
    return {
        "name": "cohort A",
        "input_file_ids": [world.file.id],
        "build": "hg19",
        "phasing": "eagle",
        "targets": list(chosen),
        **changes,
    }


async def rows(runtime: Runtime) -> tuple[int, int]:
    async with runtime.db.session() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job))
        updates = await session.scalar(select(func.count()).select_from(JobStatusUpdate))
    return int(jobs or 0), int(updates or 0)


async def create(client: httpx.AsyncClient, actor: Actor, payload: dict[str, Any]) -> Any:
    response = await client.post("/api/v1/jobs", json=payload, headers=actor.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_one_request_makes_a_parent_and_a_child_per_target(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    targets = [
        {"service_id": "michigan", "reference_panel_id": "michigan-panel", "population": "eur"},
        {"service_id": "topmed", "reference_panel_id": "topmed-panel", "phasing": "beagle"},
        {"service_id": "afgd", "reference_panel_id": "afgd-panel"},
    ]
    parent = await create(client, alice, body(world, *targets))
    assert parent["federated"] is True
    assert (parent["service_id"], parent["reference_panel_id"], parent["parent_id"]) == (
        None,
        None,
        None,
    )
    assert (parent["status"], parent["phasing"]) == ("pending", "mixed")
    assert parent["summary"] == "0 of 3 completed, 3 still active"
    children = parent["children"]
    assert [c["name"] for c in children] == [
        "cohort A [michigan / michigan-panel]",
        "cohort A [topmed / topmed-panel]",
        "cohort A [afgd / afgd-panel]",
    ]
    assert [c["service_id"] for c in children] == [s.id for s in world.services]
    assert [c["population"] for c in children] == ["eur", None, None]
    assert [c["phasing"] for c in children] == ["eagle", "beagle", "eagle"]
    assert {c["status"] for c in children} == {"pending"}
    for child in children:
        seen = (await client.get(f"/api/v1/jobs/{child['id']}", headers=alice.headers)).json()
        assert seen["parent_id"] == parent["id"]
        # The upload is stored once: every child names the same file.
        assert [f["id"] for f in seen["input_files"]] == [world.file.id]


async def test_every_bad_target_is_named_and_nothing_is_created(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    before = await rows(runtime)
    response = await client.post(
        "/api/v1/jobs",
        json=body(
            world,
            {"service_id": "michigan", "reference_panel_id": "michigan-panel"},
            {"service_id": "michigan", "reference_panel_id": "topmed-panel"},
            {"service_id": "nowhere", "reference_panel_id": "afgd-panel"},
        ),
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "targets"
    assert [(t["index"], t["service"]) for t in problem["targets"]] == [
        (1, "michigan"),
        (2, "nowhere"),
    ]
    assert "belongs to another service" in problem["targets"][0]["message"]
    assert "unknown service 'nowhere'" in problem["targets"][1]["message"]
    assert "target 2 (michigan / topmed-panel)" in problem["detail"]
    assert await rows(runtime) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"service_id": "michigan", "reference_panel_id": "michigan-panel"}, "not both"),
        ({"population": "eur"}, "population goes in each target"),
    ],
)
async def test_a_body_must_be_one_kind_of_job(
    client: httpx.AsyncClient, alice: Actor, world: World, change: dict[str, Any], words: str
) -> None:
    response = await client.post("/api/v1/jobs", json=body(world, **change), headers=alice.headers)
    assert response.status_code == 422
    assert words in response.text


async def test_target_counts_and_duplicates_are_refused(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    one = {"service_id": "michigan", "reference_panel_id": "michigan-panel"}
    before = await rows(runtime)
    alone = await client.post("/api/v1/jobs", json=body(world, one), headers=alice.headers)
    assert alone.status_code == 422
    assert "at least 2 targets" in alone.text
    twice = await client.post("/api/v1/jobs", json=body(world, one, one), headers=alice.headers)
    assert twice.status_code == 422
    assert "the same service, panel and population as target 1" in twice.text
    by_id = {"service_id": world.services[0].id, "reference_panel_id": "michigan-panel"}
    nowhere = {"service_id": "nowhere", "reference_panel_id": "x"}
    mixed = await client.post(
        "/api/v1/jobs", json=body(world, nowhere, one, by_id), headers=alice.headers
    )
    assert [(t["index"], t["service"]) for t in mixed.json()["targets"]] == [
        (0, "nowhere"),
        (2, world.services[0].id),  # as the request named it
    ]
    four = [one, {**one, "population": "afr"}, {**one, "population": "eur"}, {**one}]
    many = await client.post("/api/v1/jobs", json=body(world, *four), headers=alice.headers)
    assert many.status_code == 422
    assert "at most 3 targets" in many.text
    assert await rows(runtime) == before


async def test_the_targets_count_against_the_active_jobs_limit(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    await create(client, alice, body(world))  # two active jobs at services
    before = await rows(runtime)
    targets = [
        {"service_id": s.slug, "reference_panel_id": p.slug}
        for s, p in zip(world.services, world.panels, strict=True)
    ]
    response = await client.post("/api/v1/jobs", json=body(world, *targets), headers=alice.headers)
    assert response.status_code == 429, response.text
    assert "these 3 jobs and your 2 active job(s) would be more than the 4" in response.text
    assert await rows(runtime) == before


async def test_lists_show_the_parent_and_its_children_on_request(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    parent = await create(client, alice, body(world))
    listed = (await client.get("/api/v1/jobs", headers=alice.headers)).json()
    assert [job["id"] for job in listed["items"]] == [parent["id"]]
    children = (
        await client.get(f"/api/v1/jobs?parent_id={parent['id']}", headers=alice.headers)
    ).json()
    assert {job["id"] for job in children["items"]} == {c["id"] for c in parent["children"]}
    everything = (await client.get("/api/v1/jobs?children=true", headers=alice.headers)).json()
    assert everything["total"] == 3
    stats = (await client.get("/api/v1/jobs/stats", headers=alice.headers)).json()
    assert stats["active"] == 2  # the jobs at services; the parent runs nowhere


async def test_another_user_sees_neither_parent_nor_children(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, world: World
) -> None:
    parent = await create(client, alice, body(world))
    ids = [parent["id"], *(c["id"] for c in parent["children"])]
    for job_id in ids:
        for method, path in (
            ("GET", f"/api/v1/jobs/{job_id}"),
            ("POST", f"/api/v1/jobs/{job_id}/cancel"),
            ("POST", f"/api/v1/jobs/{job_id}/retry"),
            ("DELETE", f"/api/v1/jobs/{job_id}"),
        ):
            response = await client.request(method, path, headers=bob.headers)
            assert response.status_code == 404, (method, path, response.text)
    listed = await client.get(f"/api/v1/jobs?parent_id={parent['id']}", headers=bob.headers)
    assert listed.json()["items"] == []
    # Bob's own federated job cannot use Alice's file either.
    response = await client.post("/api/v1/jobs", json=body(world), headers=bob.headers)
    assert response.status_code == 422
    assert f"file {world.file.id} not found" in response.text


async def test_cancel_retry_and_delete_act_on_the_children(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    parent = await create(client, alice, body(world))
    # Never submitted: the children are cancelled at once, so is the parent.
    cancelled = await client.post(f"/api/v1/jobs/{parent['id']}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert {c["status"] for c in cancelled.json()["children"]} == {"cancelled"}
    assert cancelled.json()["status"] == "cancelled"

    clock.advance(60)
    retried = await client.post(f"/api/v1/jobs/{parent['id']}/retry", headers=alice.headers)
    assert retried.status_code == 201, retried.text
    again = retried.json()
    assert again["id"] == parent["id"]
    assert again["status"] == "pending"
    # Each target's attempts, oldest first; the retries count now.
    assert [c["replaced"] for c in again["children"]] == [True, False, True, False]
    assert [c["retry_of"] for c in again["children"]][1::2] == [
        c["id"] for c in again["children"][0::2]
    ]
    assert again["summary"] == "0 of 2 completed, 2 still active"

    first_child = again["children"][1]["id"]
    await client.post(f"/api/v1/jobs/{parent['id']}/cancel", headers=alice.headers)
    refused = await client.delete(f"/api/v1/jobs/{first_child}", headers=alice.headers)
    assert refused.status_code == 409
    assert f"one target of federated job {parent['id']}" in refused.text
    deleted = await client.delete(f"/api/v1/jobs/{parent['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    async with runtime.db.session() as session:
        left = await session.scalar(select(func.count()).select_from(Job))
    assert left == 0
    gone = await client.get(f"/api/v1/jobs/{first_child}", headers=alice.headers)
    assert gone.status_code == 404


async def test_deleting_the_account_stops_and_then_removes_a_federated_job(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    parent = await create(client, alice, body(world))
    response = await client.post(
        "/api/v1/auth/delete-account", json={"password": PASSWORD}, headers=alice.headers
    )
    assert response.status_code == 202, response.text
    async with runtime.db.session() as session:
        row = await session.get(Job, parent["id"])
        assert row is not None
        # The children were never submitted: cancelled at once; the parent follows them.
        assert (row.status, row.next_step) == ("cancelling", "follow")
        assert {c.status for c in await federated.children_of(session, row.id)} == {"cancelled"}
    await Worker(runtime).run_once()
    assert await deletion.finish_due(runtime, now=clock.now()) == 1
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_a_federated_job_can_be_checked_before_its_files_are_uploaded(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    before = await rows(runtime)
    planned = {"files": [{"filename": "study.vcf.gz", "size": 1000}], "input_file_ids": []}
    response = await client.post(
        "/api/v1/jobs/check", json=body(world, **planned), headers=alice.headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [t["service_slug"] for t in answer["targets"]] == ["michigan", "topmed"]
    assert [t["input_files"] for t in answer["targets"]] == [
        [{"id": None, "filename": "study.vcf.gz", "size": 1000}]
    ] * 2
    bad = body(
        world,
        {"service_id": "michigan", "reference_panel_id": "michigan-panel"},
        {"service_id": "topmed", "reference_panel_id": "michigan-panel"},
        **planned,
    )
    refused = await client.post("/api/v1/jobs/check", json=bad, headers=alice.headers)
    assert refused.status_code == 422
    assert [t["index"] for t in refused.json()["targets"]] == [1]
    assert await rows(runtime) == before


@pytest.mark.parametrize("each", [False, True])
async def test_only_the_parent_notifies_unless_each_target_was_asked_for(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, each: bool
) -> None:
    parent = await create(client, alice, body(world, notify_each_target=each))
    await client.post(f"/api/v1/jobs/{parent['id']}/cancel", headers=alice.headers)
    await relay.fan_out(runtime)

    listed = await client.get("/api/v1/notifications", headers=alice.headers)
    titles = sorted(item["title"] for item in listed.json()["items"])
    expected = ["Job 'cohort A' was cancelled"]
    if each:
        expected += [f"Job '{child['name']}' was cancelled" for child in parent["children"]]
    assert titles == sorted(expected)
    # The live stream carries every child's event, with its parent.
    async with runtime.db.session() as session:
        events = list(await session.scalars(select(Event).order_by(Event.id)))
    children = {child["id"] for child in parent["children"]}
    assert {e.payload["parent_id"] for e in events if e.job_id in children} == {parent["id"]}
