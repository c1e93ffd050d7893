"""The console's queries on each database: the stats page's figures (day buckets, failure
rate, median time to results, queue depth, oldest waiting job) and the admins' queue
(everyone's active jobs with filters and last messages, jobs held per service, an admin's
audited retry)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from imputehub.db.models import AuditEntry, Job, JobStatusUpdate, ReferencePanel, Service, User
from imputehub.domain.errors import InvalidInput, InvalidTransition, PermissionDenied
from imputehub.domain.jobs import JobStatus, Step
from imputehub.jobs import admin_queries
from imputehub.monitoring import console_stats
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def now(runtime: Runtime) -> datetime:
    # Midday, so "n hours ago" stays on the same calendar day in every test run.
    moment = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    runtime.clock.current = moment  # type: ignore[attr-defined]
    return moment


async def user_row(runtime: Runtime, actor: Actor) -> User:
    async with runtime.db.session() as session:
        found = await session.get(User, actor.id)
    assert found is not None
    return found


async def a_job(
    runtime: Runtime,
    owner: str,
    service: Service,
    panel: ReferencePanel,
    status: str,
    *,
    created: datetime,
    ended: datetime | None = None,
    **fields: Any,
) -> Job:
    upload = await factories.make_file(runtime, owner)
    terminal = status in ("completed", "failed", "cancelled")
    values: dict[str, Any] = {
        "status": status,
        "created_at": created,
        "completed_at": ended,
        "next_step": None if terminal else Step.SUBMIT.value,
        "next_run_at": None if terminal else created,
    }
    values.update(fields)
    return await factories.make_job(
        runtime, user_id=owner, service=service, panel=panel, files=[upload], **values
    )


async def test_stats_count_days_services_failure_rates_and_medians(
    runtime: Runtime, admin: Actor, alice: Actor, now: datetime
) -> None:
    michigan = await factories.make_service(runtime, name="Michigan", slug="michigan")
    topmed = await factories.make_service(runtime, name="TOPMed", slug="topmed")
    m_panel = await factories.make_panel(runtime, michigan)
    t_panel = await factories.make_panel(runtime, topmed)
    today = now
    # Michigan: 3 completed (1 h, 2 h, 6 h to results), 1 failed: failure rate 25 %.
    for hours in (1, 2, 6):
        await a_job(
            runtime, alice.id, michigan, m_panel, "completed",
            created=today - DAY - hours * HOUR, ended=today - DAY,
        )  # fmt: skip
    await a_job(
        runtime, alice.id, michigan, m_panel, "failed", created=today - 3 * HOUR, ended=today
    )
    # TOPMed: one cancelled (no failure rate), one running, one queued and one pending.
    await a_job(runtime, alice.id, topmed, t_panel, "cancelled", created=today - HOUR, ended=today)
    await a_job(runtime, alice.id, topmed, t_panel, "running", created=today - 2 * HOUR)
    oldest = await a_job(
        runtime, alice.id, topmed, t_panel, "queued", created=today - 5 * HOUR, name="oldest"
    )
    await a_job(
        runtime, alice.id, topmed, t_panel, "pending", created=today - timedelta(minutes=30)
    )
    # Outside a 7-day window: counted in 30 days only.
    await a_job(
        runtime, alice.id, michigan, m_panel, "failed",
        created=today - 10 * DAY, ended=today - 10 * DAY,
    )  # fmt: skip

    async with runtime.db.session() as session:
        figures = await console_stats.console_stats(
            session, await user_row(runtime, admin), now=now, days=7
        )

    assert figures.days == 7
    assert len(figures.daily) == 7
    assert figures.daily[-1].day == date(2026, 11, 20)
    assert figures.since == datetime(2026, 11, 14, tzinfo=UTC)
    by_day = {day.day: day for day in figures.daily}
    yesterday, today_row = by_day[date(2026, 11, 19)], by_day[date(2026, 11, 20)]
    assert (yesterday.submitted, yesterday.completed) == (3, 3)
    assert (today_row.submitted, today_row.failed, today_row.cancelled) == (5, 1, 1)
    assert sum(day.submitted for day in figures.daily) == 8

    services = {s.slug: s for s in figures.services}
    assert [s.name for s in figures.services] == ["Michigan", "TOPMed"]
    mich = services["michigan"]
    assert (mich.completed, mich.failed, mich.cancelled) == (3, 1, 0)
    assert mich.failure_rate == pytest.approx(0.25)
    assert mich.median_seconds == pytest.approx(2 * 3600)
    assert services["topmed"].failure_rate is None
    assert services["topmed"].median_seconds is None

    assert figures.active_by_status == {"pending": 1, "queued": 1, "running": 1, "cancelling": 0}
    assert figures.oldest_waiting is not None
    assert figures.oldest_waiting.job_id == oldest.id
    assert figures.oldest_waiting.service_name == "TOPMed"
    assert figures.oldest_waiting.age_seconds == pytest.approx(5 * 3600)
    assert not figures.capped

    async with runtime.db.session() as session:
        month = await console_stats.console_stats(
            session, await user_row(runtime, admin), now=now, days=30
        )
    assert {s.slug: s.failed for s in month.services}["michigan"] == 2
    assert {s.slug: s.failure_rate for s in month.services}["michigan"] == pytest.approx(0.4)


async def test_stats_of_an_empty_hub_are_zeros_and_nones(
    runtime: Runtime, admin: Actor, now: datetime
) -> None:
    async with runtime.db.session() as session:
        figures = await console_stats.console_stats(
            session, await user_row(runtime, admin), now=now, days=90
        )
    assert len(figures.daily) == 90
    assert all(d.submitted == d.completed == d.failed == d.cancelled == 0 for d in figures.daily)
    assert figures.services == []
    assert figures.oldest_waiting is None
    assert set(figures.active_by_status.values()) == {0}


async def test_stats_are_for_admins_and_known_periods_only(
    runtime: Runtime, admin: Actor, alice: Actor, now: datetime
) -> None:
    async with runtime.db.session() as session:
        with pytest.raises(PermissionDenied):
            await console_stats.console_stats(
                session, await user_row(runtime, alice), now=now, days=7
            )
        with pytest.raises(InvalidInput, match="7, 30, 90"):
            await console_stats.console_stats(
                session, await user_row(runtime, admin), now=now, days=8
            )


async def test_the_queue_lists_everyones_active_jobs_oldest_first_with_filters(
    runtime: Runtime, admin: Actor, alice: Actor, bob: Actor, now: datetime
) -> None:
    michigan = await factories.make_service(runtime, name="Michigan", slug="michigan")
    topmed = await factories.make_service(runtime, name="TOPMed", slug="topmed")
    m_panel = await factories.make_panel(runtime, michigan, display_name="1000G")
    t_panel = await factories.make_panel(runtime, topmed)
    older = await a_job(runtime, bob.id, michigan, m_panel, "queued", created=now - 2 * HOUR)
    newer = await a_job(runtime, alice.id, michigan, m_panel, "pending", created=now - HOUR)
    other = await a_job(runtime, alice.id, topmed, t_panel, "running", created=now - 3 * HOUR)
    await a_job(runtime, alice.id, michigan, m_panel, "completed", created=now - DAY, ended=now)
    failed = await a_job(
        runtime, bob.id, michigan, m_panel, "failed", created=now - DAY, ended=now - HOUR
    )
    async with runtime.db.session() as session:
        session.add_all(
            [
                JobStatusUpdate(
                    job_id=older.id, status="queued", progress=0, message="first", created_at=now
                ),
                JobStatusUpdate(
                    job_id=older.id,
                    status="queued",
                    progress=0,
                    message="waiting for a free slot at Michigan",
                    created_at=now,
                ),
                JobStatusUpdate(
                    job_id=older.id, status="queued", progress=1, message="", created_at=now
                ),
            ]
        )
    me = await user_row(runtime, admin)

    async def listed(**filters: Any) -> admin_queries.QueuePage:
        async with runtime.db.session() as session:
            return await admin_queries.list_queue(
                session, me, filters=admin_queries.QueueFilters(**filters), limit=10
            )

    everything = await listed()
    assert [row.job.id for row in everything.rows] == [other.id, older.id, newer.id]
    assert everything.total == 3
    first = everything.rows[1]
    assert (first.owner, first.service_name, first.panel_name) == ("bob", "Michigan", "1000G")
    assert first.message == "waiting for a free slot at Michigan"
    assert everything.rows[2].message == ""

    assert [r.job.id for r in (await listed(service="michigan")).rows] == [older.id, newer.id]
    assert [r.job.id for r in (await listed(owner="ALICE")).rows] == [other.id, newer.id]
    only = await listed(status=JobStatus.QUEUED, service=michigan.id, owner="bob")
    assert [r.job.id for r in only.rows] == [older.id]
    assert [r.job.id for r in (await listed(status=JobStatus.FAILED)).rows] == [failed.id]
    assert (await listed(owner="nobody")).total == 0
    with pytest.raises(InvalidInput, match="Jobs pages"):
        await listed(status=JobStatus.COMPLETED)
    async with runtime.db.session() as session:
        second_page = await admin_queries.list_queue(
            session, me, filters=admin_queries.QueueFilters(), limit=2, offset=2
        )
        assert [r.job.id for r in second_page.rows] == [newer.id]
        with pytest.raises(PermissionDenied):
            await admin_queries.list_queue(
                session,
                await user_row(runtime, alice),
                filters=admin_queries.QueueFilters(),
            )


async def test_jobs_waiting_in_the_hub_are_counted_per_service(
    runtime: Runtime, alice: Actor, now: datetime
) -> None:
    service = await factories.make_service(runtime, slug="held")
    panel = await factories.make_panel(runtime, service)
    for _ in range(2):
        await a_job(runtime, alice.id, service, panel, "queued", created=now)
    await a_job(
        runtime, alice.id, service, panel, "running", created=now,
        submit_started_at=now, next_step=Step.POLL.value,
    )  # fmt: skip
    async with runtime.db.session() as session:
        assert await admin_queries.waiting_in_hub(session) == {service.id: 2}


async def test_an_admin_retries_someone_elses_job_and_it_is_audited(
    runtime: Runtime, admin: Actor, alice: Actor, now: datetime
) -> None:
    service = await factories.make_service(runtime, slug="svc")
    panel = await factories.make_panel(runtime, service)
    failed = await a_job(runtime, alice.id, service, panel, "failed", created=now, ended=now)
    running = await a_job(runtime, alice.id, service, panel, "running", created=now)
    me = await user_row(runtime, admin)
    async with runtime.db.session() as session:
        retried = await admin_queries.retry_as_admin(
            session, me, failed.id, now=now, max_active_jobs=10
        )
    assert retried.user_id == alice.id
    assert retried.status == "pending"
    async with runtime.db.session() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "job_retried_by_admin")
        )
        assert entry is not None
        assert (entry.actor, entry.target_id) == ("admin", failed.id)
        assert entry.details == {"owner_id": alice.id, "new_job_id": retried.id}
        with pytest.raises(InvalidTransition):
            await admin_queries.retry_as_admin(session, me, running.id, now=now, max_active_jobs=10)
