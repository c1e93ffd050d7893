"""Federated jobs: one upload sent to several services and panels (domain/federation.py).

`create_federated_job` checks every target first, exactly as a single job is checked
(jobs/create.check_request), and refuses the request naming each bad target; otherwise it
adds, in the caller's transaction, a parent (no service, no panel) and one pending child per
target. Children are ordinary jobs: the worker submits each to its service with the owner's
own credential for that service if they have one, else the service's platform credential
(registry/credentials.py), never another service's. They share the parent's input files,
stored once.

The parent's status follows its children (`follow`, the worker's `follow` step every
IMPUTEHUB_PARENT_FOLLOW_SECONDS); cancel and retry of the parent act on the children that
need it. Children are quiet (their events reach no notification) unless the owner asked to
hear of each; the parent's events always do.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, User
from imputehub.db.session import lock_row
from imputehub.domain import federation
from imputehub.domain.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from imputehub.domain.jobs import ACTIVE, TERMINAL, JobMode, JobStatus, Step
from imputehub.files.chunked import check_upload_size
from imputehub.jobs import create, lifecycle, validation
from imputehub.monitoring import audit
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

# IMPUTEHUB_MAX_TARGETS_PER_JOB may not go above this (each target is a job at a service).
MAX_TARGETS_CEILING = 20
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
# Words that separate a child's name from its target's (kept within validation.MAX_NAME).
_CHILD_NAME = "{name} [{service} / {panel}]"


@dataclass(frozen=True, kw_only=True)
class Target:
    """One service and panel a federated job goes to (by id or slug)."""

    service: str
    reference_panel: str
    population: str | None = None
    phasing: str | None = None  # None: the request's phasing


@dataclass(frozen=True, kw_only=True)
class FederatedRequest:
    name: str
    build: str
    targets: tuple[Target, ...]
    phasing: str | None = None
    input_file_ids: tuple[str, ...] = ()
    description: str | None = None
    mode: str = JobMode.IMPUTATION.value
    r2_filter: float | None = None
    notify_each: bool = False  # the children's own events reach notifications too

    def for_target(self, target: Target) -> create.JobRequest:
        return create.JobRequest(
            name=self.name,
            description=self.description,
            service=target.service,
            reference_panel=target.reference_panel,
            build=self.build,
            phasing=target.phasing or self.phasing,
            population=target.population,
            input_file_ids=self.input_file_ids,
            mode=self.mode,
            r2_filter=self.r2_filter,
        )


@dataclass(frozen=True, kw_only=True)
class TargetProblem:
    """Why one target was refused (`index` counts from 0, as in the request)."""

    index: int
    service: str
    reference_panel: str
    message: str


def _target_count(targets: Sequence[Target], maximum: int) -> None:
    if len(targets) < federation.MIN_TARGETS:
        raise InvalidInput(
            f"a federated job needs at least {federation.MIN_TARGETS} targets", field="targets"
        )
    if len(targets) > maximum:
        raise InvalidInput(
            f"a federated job may have at most {maximum} targets; this one has {len(targets)}",
            field="targets",
        )


def child_name(name: str, service: str, panel: str) -> str:
    full = _CHILD_NAME.format(name=name, service=service, panel=panel)
    if len(full) <= validation.MAX_NAME:
        return full
    room = validation.MAX_NAME - (len(full) - len(name)) - 1
    return _CHILD_NAME.format(name=name[: max(room, 1)] + "…", service=service, panel=panel)[
        : validation.MAX_NAME
    ]


async def check_targets(
    session: AsyncSession,
    *,
    owner_id: str,
    request: FederatedRequest,
    max_active_jobs: int,
    max_targets: int,
    planned: Sequence[create.PlannedFile] = (),
) -> list[create.CheckedRequest]:
    """Every target checked as its own job would be; raises once, naming every bad target
    (InvalidInput with `targets`: index and message of each), and writes nothing.
    `planned`: a dry run's files still to upload (create.check_request)."""
    _target_count(request.targets, max_targets)
    checked: list[tuple[int, create.CheckedRequest]] = []
    problems: list[TargetProblem] = []
    for index, target in enumerate(request.targets):
        try:
            checked.append(
                (
                    index,
                    await create.check_request(
                        session,
                        owner_id=owner_id,
                        request=request.for_target(target),
                        max_active_jobs=max_active_jobs,
                        adding=len(request.targets),
                        planned=planned,
                    ),
                )
            )
        except (InvalidInput, NotFound, PermissionDenied) as exc:
            problems.append(
                TargetProblem(
                    index=index,
                    service=target.service,
                    reference_panel=target.reference_panel,
                    message=exc.message,
                )
            )
    seen: dict[tuple[str, str, str | None], int] = {}
    for index, item in checked:
        key = (item.service.id, item.panel.id, item.population)
        if key in seen:
            target = request.targets[index]
            problems.append(
                TargetProblem(
                    index=index,
                    service=target.service,
                    reference_panel=target.reference_panel,
                    message=f"the same service, panel and population as target {seen[key] + 1}",
                )
            )
        seen.setdefault(key, index)
    if problems:
        problems.sort(key=lambda problem: problem.index)
        lines = "; ".join(
            f"target {p.index + 1} ({p.service} / {p.reference_panel}): {p.message}"
            for p in problems
        )
        raise InvalidInput(
            f"the job was not created: {lines}",
            field="targets",
            targets=[dataclasses.asdict(problem) for problem in problems],
        )
    return [item for _, item in checked]


async def create_federated_job(
    session: AsyncSession,
    *,
    owner_id: str,
    request: FederatedRequest,
    now: datetime,
    max_active_jobs: int,
    max_targets: int,
) -> Job:
    """Add a parent and one child per target to the session, or raise before adding any."""
    checked = await check_targets(
        session,
        owner_id=owner_id,
        request=request,
        max_active_jobs=max_active_jobs,
        max_targets=max_targets,
    )
    first = checked[0]
    parent = create.pending_job(
        owner_id=owner_id,
        now=now,
        files=first.files,
        service_id=None,
        reference_panel_id=None,
        name=first.name,
        description=first.description,
        build=first.build.value,
        phasing=federation.common([c.phasing.value for c in checked], mixed="mixed") or "mixed",
        population=federation.common([c.population for c in checked], mixed=None),
        mode=first.mode.value,
        r2_filter=first.r2_filter,
        next_step=Step.FOLLOW.value,
    )
    session.add(parent)
    await session.flush()
    for index, item in enumerate(checked):
        named = dataclasses.replace(
            item, name=child_name(item.name, item.service.slug, item.panel.slug)
        )
        await create.add_job(
            session,
            named,
            owner_id=owner_id,
            now=now,
            parent_id=parent.id,
            target_index=index,
            notify=request.notify_each,
        )
    lifecycle.set_status(
        session,
        parent,
        JobStatus.PENDING,
        now=now,
        message=f"federated job created: {len(checked)} targets",
    )
    log.info(
        "federated job created",
        extra={
            "action": "federated_job_created",
            "job_id": parent.id,
            "user_id": owner_id,
            "targets": len(checked),
        },
    )
    return parent


async def submit(
    runtime: Runtime, *, owner_id: str, request: FederatedRequest, now: datetime
) -> tuple[Job, list[Job]]:
    """Create a federated job in a transaction of its own: the parent and its children."""
    async with runtime.db.session() as session:
        parent = await create_federated_job(
            session,
            owner_id=owner_id,
            request=request,
            now=now,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
            max_targets=runtime.settings.max_targets_per_job,
        )
        children = await children_of(session, parent.id)
    return parent, children


async def preview(
    runtime: Runtime,
    *,
    owner_id: str,
    request: FederatedRequest,
    planned: Sequence[create.PlannedFile] = (),
) -> list[create.JobPreview]:
    """The dry run of `submit`: the same checks, each target's job, nothing written (the
    session is never committed)."""
    for item in planned:
        check_upload_size(item.size, runtime.settings.max_upload_size)
    async with runtime.db.sessionmaker() as session:
        checked = await check_targets(
            session,
            owner_id=owner_id,
            request=request,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
            max_targets=runtime.settings.max_targets_per_job,
            planned=planned,
        )
    return [create.preview_of(item, planned) for item in checked]


# --- reading ------------------------------------------------------------------------------


def is_parent(job: Job) -> bool:
    return job.service_id is None


async def children_of(session: AsyncSession, parent_id: str) -> list[Job]:
    """Every child of the parent, retried ones too: by target, each target's oldest first."""
    rows = await session.scalars(
        select(Job)
        .where(Job.parent_id == parent_id)
        .order_by(Job.target_index, Job.created_at, Job.id)
    )
    return list(rows)


async def children_if_parent(session: AsyncSession, job: Job) -> list[Job] | None:
    """A federated job's children, for showing it; None for any other job."""
    return await children_of(session, job.id) if is_parent(job) else None


def _child(job: Job) -> federation.Child:
    return federation.Child(
        id=job.id, retry_of=job.retry_of, status=JobStatus(job.status), progress=job.progress
    )


def current_children(children: Sequence[Job]) -> list[Job]:
    """Each target's latest attempt, in order."""
    keep = {child.id for child in federation.current([_child(job) for job in children])}
    return [job for job in children if job.id in keep]


def summary(children: Sequence[Job]) -> str:
    return federation.summary([_child(job) for job in children])


# --- following the children -----------------------------------------------------------------


async def follow(
    session: AsyncSession, parent: Job, *, now: datetime, every_seconds: float = 0.0
) -> federation.ParentState:
    """Bring the parent's status and progress up to date with its children's; schedules its
    next step (another look, the comparison, or none once it has ended)."""
    children = await children_of(session, parent.id)
    state = federation.state(
        [_child(job) for job in children],
        parent_status=JobStatus(parent.status),
        mode=JobMode(parent.mode),
    )
    changed = state.status.value != parent.status
    lifecycle.follow_children(
        session,
        parent,
        state.status,
        now=now,
        message=state.summary if changed else "",
        progress=state.progress,
    )
    if state.step is Step.FOLLOW:
        parent.next_step = Step.FOLLOW.value
        parent.next_run_at = now + timedelta(seconds=every_seconds)
    elif state.step is Step.COMPARE:
        parent.next_step = Step.COMPARE.value
        parent.next_run_at = now
    return state


async def _lock_parent(session: AsyncSession, parent_id: str) -> Job:
    await lock_row(session, Job, parent_id)
    parent = await session.get(Job, parent_id, populate_existing=True)
    if parent is None:
        raise NotFound(f"job {parent_id} not found")
    return parent


# --- what users do to a parent ----------------------------------------------------------------


async def cancel(session: AsyncSession, parent: Job, *, now: datetime) -> Job:
    """Cancel every active child; the parent is cancelling until they have all ended."""
    if JobStatus(parent.status) in TERMINAL:
        raise InvalidTransition(
            f"job {parent.id} is already {parent.status}; only active jobs can be cancelled",
            current=parent.status,
            target=JobStatus.CANCELLED.value,
        )
    active = [
        child
        for child in current_children(await children_of(session, parent.id))
        if JobStatus(child.status) in ACTIVE
    ]
    if not active:
        raise InvalidTransition(
            f"every target of job {parent.id} has ended; their results are being compared",
            current=parent.status,
            target=JobStatus.CANCELLED.value,
        )
    for child in active:
        lifecycle.request_cancel(session, child, now=now)
    lifecycle.request_cancel(session, parent, now=now)
    await session.flush()
    await follow(session, parent, now=now)  # the worker looks again at once
    return parent


async def retry(
    session: AsyncSession,
    user: User,
    parent: Job,
    *,
    now: datetime,
    max_active_jobs: int,
    origin: audit.Origin | None = None,
) -> Job:
    """Retry each failed or cancelled child (each target's latest attempt); the parent
    follows the new children from now on. Returns the parent."""
    if JobStatus(parent.status) not in TERMINAL:
        raise InvalidTransition(
            f"job {parent.id} is still {parent.status}; retry it once it has ended",
            current=parent.status,
        )
    children = current_children(await children_of(session, parent.id))
    failed = [child for child in children if JobStatus(child.status) in RETRYABLE]
    if not failed:
        raise InvalidTransition(
            f"every target of job {parent.id} completed; there is nothing to retry",
            current=parent.status,
        )
    await create.ensure_below_active_limit(
        session, parent.user_id, max_active_jobs, adding=len(failed)
    )
    for child in failed:
        await _retry_child(session, child, now=now, max_active_jobs=max_active_jobs)
    await session.flush()
    await follow(session, parent, now=now)  # the worker looks again at once
    if parent.user_id != user.id:
        await audit.record(
            session,
            action="job_retried_by_admin",
            actor=user,
            now=now,
            target_type="job",
            target_id=parent.id,
            origin=origin,
            details={"owner_id": parent.user_id, "children": [c.id for c in failed]},
        )
    return parent


async def retry_child(
    session: AsyncSession,
    child: Job,
    *,
    now: datetime,
    max_active_jobs: int,
) -> Job:
    """Retry one child of a federated job: a new child in its place; the parent reopens."""
    if child.parent_id is None:
        raise ValueError("not a federated job's child")
    parent = await _lock_parent(session, child.parent_id)
    latest = current_children(await children_of(session, parent.id))
    if child.id not in {job.id for job in latest}:
        raise Conflict(f"job {child.id} was retried already; retry its latest attempt")
    job = await _retry_child(session, child, now=now, max_active_jobs=max_active_jobs)
    await session.flush()
    await follow(session, parent, now=now)  # the worker looks again at once
    return job


async def _retry_child(
    session: AsyncSession, child: Job, *, now: datetime, max_active_jobs: int
) -> Job:
    request = create.request_like(child, mode=child.mode)
    checked = await create.check_request(
        session, owner_id=child.user_id, request=request, max_active_jobs=max_active_jobs
    )
    return await create.add_job(
        session,
        checked,
        owner_id=child.user_id,
        now=now,
        retry_of=child.id,
        parent_id=child.parent_id,
        target_index=child.target_index,
        notify=child.notify,
    )
