"""A past job's settings as the start of a new one ("new job like this", "run again as QC
only", "send to another service").

A federated job's parent has no service or panel of its own: its settings carry its
targets (each target's latest attempt), so the new job starts with all of them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import User
from imputehub.domain.errors import NotFound
from imputehub.domain.jobs import JobMode
from imputehub.jobs import federated, queries, validation


@dataclass(frozen=True, kw_only=True)
class TargetSettings:
    """One service and panel of a past federated job."""

    service_id: str
    reference_panel_id: str
    population: str | None
    phasing: str


@dataclass(frozen=True, kw_only=True)
class JobSettings:
    """What a new job's form starts from; the user may change any of it."""

    like: str  # the past job's id
    name: str
    description: str
    service_id: str
    reference_panel_id: str
    build: str
    phasing: str
    population: str | None
    mode: str
    r2_filter: float | None
    input_file_ids: tuple[str, ...]  # those of its inputs the hub still holds
    targets: tuple[TargetSettings, ...] = ()  # a federated job's; empty for any other


def again(name: str, mode: str) -> str:
    suffix = " (QC only)" if mode == JobMode.QC_ONLY else " (again)"
    base = name.removesuffix(" (again)").removesuffix(" (QC only)")
    return (base[: validation.MAX_NAME - len(suffix)] + suffix).strip()


async def settings_like(
    session: AsyncSession, user: User, job_id: str, *, mode: str | None = None
) -> JobSettings:
    """The settings of the caller's own job `job_id` (anyone else's, admins' included, is
    "not found": a new job runs on its owner's files), with `mode` instead of its own."""
    job = await queries.get_job(session, user, job_id)
    if job.user_id != user.id:
        raise NotFound(f"job {job_id} not found")
    chosen = validation.choice(JobMode, mode, field="mode").value if mode else job.mode
    children = await federated.children_if_parent(session, job)
    targets = tuple(
        TargetSettings(
            service_id=child.service_id or "",
            reference_panel_id=child.reference_panel_id or "",
            population=child.population,
            phasing=child.phasing,
        )
        for child in federated.current_children(children or [])
    )
    return JobSettings(
        like=job.id,
        name=again(job.name, chosen),
        description=job.description or "",
        # A federated job's parent has neither: `targets` carries its services and panels.
        service_id=job.service_id or "",
        reference_panel_id=job.reference_panel_id or "",
        build=job.build,
        phasing=job.phasing,
        population=job.population,
        mode=chosen,
        r2_filter=job.r2_filter,
        input_file_ids=tuple(
            item.file.id
            for item in sorted(job.inputs, key=lambda i: i.position)
            if item.file is not None and item.file.kind == "input"
        ),
        targets=targets,
    )
