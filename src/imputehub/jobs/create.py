"""Creating a job: check everything first, then queue it for the worker.

`check_request` holds every check; `create_job` and its dry run `preview_job` (POST
/jobs/check: files described, not yet uploaded) both call it, so they cannot disagree.

A job that passes is `pending` and due at once (`next_step="submit"`), with a first
status-update row. A job that fails any check leaves nothing behind: no row, and none of
the files that came with the request.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobInput, ReferencePanel, Service, StoredFile, User, new_id
from imputehub.db.session import lock_row
from imputehub.domain.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from imputehub.domain.jobs import ACTIVE, Build, JobMode, JobStatus, Phasing, Step
from imputehub.files.chunked import check_upload_size
from imputehub.files.uploads import StagedUpload, discard, record_uploads
from imputehub.jobs import lifecycle, validation
from imputehub.operations import hub_settings, maintenance
from imputehub.registry import credentials, lookup, rules
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """What a user asks for; service and panel by id or slug."""

    name: str
    service: str
    reference_panel: str
    build: str
    # None: required in imputation mode; a qc_only job gets validation.QC_ONLY_PHASING.
    phasing: str | None
    input_file_ids: tuple[str, ...] = ()
    description: str | None = None
    population: str | None = None
    mode: str = JobMode.IMPUTATION.value
    r2_filter: float | None = None


@dataclass(frozen=True, kw_only=True)
class PlannedFile:
    """A file the client has not uploaded yet, as it describes it (for a dry run).

    `report` is the client's own pre-flight VCF report (`VcfReport.to_dict()`), or None
    when it has none: then only the size is checked. It is advisory: the real job is
    checked against the report the hub itself makes of the uploaded bytes.
    """

    filename: str
    size: int
    report: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class CheckedRequest:
    """A request that passed every check, with the rows it names."""

    name: str
    description: str
    service: Service
    panel: ReferencePanel
    build: Build
    phasing: Phasing
    population: str | None
    mode: JobMode
    r2_filter: float | None
    files: tuple[StoredFile, ...]


@dataclass(frozen=True, kw_only=True)
class PreviewInput:
    id: str | None  # None: a planned file, not uploaded yet
    filename: str
    size: int


@dataclass(frozen=True, kw_only=True)
class JobPreview:
    """What `create_job` would make of a request: plain values, no rows."""

    name: str
    description: str
    service_id: str
    service_slug: str
    reference_panel_id: str
    reference_panel_slug: str
    build: str
    phasing: str
    population: str | None
    mode: str
    r2_filter: float | None
    input_files: tuple[PreviewInput, ...]


def request_like(original: Job, *, mode: str) -> JobRequest:
    """A request for a new job with `original`'s settings and inputs (a retry, a rerun)."""
    if not original.inputs:
        raise Conflict(
            f"the input files of job {original.id} have been deleted; upload them again "
            "and create a new job"
        )
    return JobRequest(
        name=original.name,
        description=original.description,
        service=original.at_service_id,
        reference_panel=original.reference_panel_id or "",
        input_file_ids=tuple(item.file_id for item in original.inputs),
        build=original.build,
        phasing=original.phasing,
        population=original.population,
        mode=mode,
        r2_filter=original.r2_filter,
    )


async def count_active_jobs(session: AsyncSession, user_id: str) -> int:
    """The user's active jobs at services (a federated job counts as its children)."""
    statement = select(func.count()).where(
        Job.user_id == user_id,
        Job.status.in_([s.value for s in ACTIVE]),
        Job.service_id.is_not(None),
    )
    return int(await session.scalar(statement) or 0)


async def ensure_below_active_limit(
    session: AsyncSession,
    user_id: str,
    limit: int,
    *,
    adding: int = 1,
) -> None:
    """LimitExceeded when `adding` more jobs would take the user past `limit` active ones."""
    # Serialise job creation per user so two requests at once cannot both squeeze in.
    await lock_row(session, User, user_id)
    active = await count_active_jobs(session, user_id)
    if active + adding > limit:
        if adding == 1:
            message = (
                f"you already have {active} active job(s), the most allowed at once; "
                "wait for one to finish or cancel one"
            )
        else:
            message = (
                f"these {adding} jobs and your {active} active job(s) would be more than the "
                f"{limit} allowed at once; wait for some to finish, cancel some, or choose "
                "fewer targets"
            )
        raise LimitExceeded(message, limit=limit)


async def _service(session: AsyncSession, ref: str) -> Service:
    try:
        service = await lookup.get_service(session, ref, include_inactive=True)
    except NotFound:
        raise InvalidInput(f"unknown service '{ref}'", field="service_id") from None
    if not service.is_active:
        raise InvalidInput(f"service '{service.slug}' is not active", field="service_id")
    return service


async def _panel(session: AsyncSession, ref: str, service: Service) -> ReferencePanel:
    try:
        # By the hub's id or slug, or the service's own panel id, this service's first.
        panel = await lookup.get_panel(session, ref, include_inactive=True, service_id=service.id)
    except NotFound:
        raise InvalidInput(f"unknown reference panel '{ref}'", field="reference_panel_id") from None
    if panel.service_id != service.id:
        raise InvalidInput(
            f"reference panel '{panel.slug}' belongs to another service, not '{service.slug}'",
            field="reference_panel_id",
        )
    if not panel.is_active:
        raise InvalidInput(
            f"reference panel '{panel.slug}' is not active", field="reference_panel_id"
        )
    return panel


async def _input_files(
    session: AsyncSession, owner_id: str, ids: Sequence[str], service: Service
) -> list[StoredFile]:
    if not ids:
        return []  # a dry run's files may all be still to come
    # FOR SHARE (PostgreSQL): a file cannot be deleted while a job is being made from it.
    rows = await session.scalars(
        select(StoredFile)
        .where(StoredFile.id.in_(ids), StoredFile.user_id == owner_id)
        .with_for_update(read=True)
    )
    by_id = {row.id: row for row in rows}
    files: list[StoredFile] = []
    for file_id in ids:
        record = by_id.get(file_id)
        if record is None:
            # Same words whether the file is missing or someone else's: reveal nothing.
            raise InvalidInput(f"file {file_id} not found", field="input_file_ids")
        if record.kind != "input":
            # Results belong to their job and go when it is deleted; a job must not lean on them.
            raise InvalidInput(
                f"file {file_id} is a job result; only uploaded files can be job inputs",
                field="input_file_ids",
            )
        fits_service(record.filename, record.size, service)
        files.append(record)
    return files


def fits_service(filename: str, size: int, service: Service) -> None:
    """InvalidInput when the file is larger than the service takes (jobs/compatibility.py
    asks it too, before a job is made)."""
    if service.max_upload_size is not None and size > service.max_upload_size:
        raise InvalidInput(
            f"file '{filename}' ({size} bytes) is larger than service "
            f"'{service.slug}' accepts ({service.max_upload_size} bytes)",
            field="input_file_ids",
        )


async def check_request(
    session: AsyncSession,
    *,
    owner_id: str,
    request: JobRequest,
    max_active_jobs: int,
    planned: Sequence[PlannedFile] = (),
    credential_source: str | None = None,
    adding: int = 1,
) -> CheckedRequest:
    """Every check a new job must pass; raises the first refusal, writes nothing.

    `planned` files (a dry run's) come after `request.input_file_ids` and meet the same
    rules, judged from what the client says of them. `adding`: how many jobs the request
    makes (a federated job's targets), for the limit on active jobs. Everything is read
    before the one lock it takes, last (`ensure_below_active_limit`): the write lock is short.
    """
    maintenance.refuse_if_closed(await hub_settings.load(session))
    name = validation.name(request.name)
    description = validation.description(request.description)
    build = validation.choice(Build, request.build, field="build")
    mode = validation.choice(JobMode, request.mode, field="mode")
    phasing = validation.phasing(request.phasing, mode=mode)
    r2_filter = validation.r2_filter(request.r2_filter)
    ids = validation.input_file_ids(request.input_file_ids, planned=len(planned))
    service = await _service(session, request.service)
    panel = await _panel(session, request.reference_panel, service)
    # A job runs with the owner's own credential when there is one: the panel must be
    # one that credential sees, or the job would fail hours later at the service. (Not so
    # for a job told to use the platform credential: an admin's self-test.)
    if credential_source != credentials.PLATFORM:
        await credentials.ensure_panel_visible(
            session, user_id=owner_id, service=service, panel=panel
        )
    config = service.api_config or {}
    phasing = validation.offered_phasing(
        phasing, service_slug=service.slug, offered=rules.offered_phasing(config)
    )
    r2_filter = validation.offered_r2_filter(
        r2_filter, service_slug=service.slug, offered=rules.offered_r2_filters(config)
    )
    validation.build(
        build.value,
        panel_slug=panel.slug,
        panel_build=panel.build,
        service_builds=service.supported_builds or (),
    )
    population = validation.population(
        request.population, panel_slug=panel.slug, panel_populations=panel.populations or ()
    )
    files = await _input_files(session, owner_id, ids, service)
    for item in planned:
        fits_service(item.filename, item.size, service)
    reports: list[tuple[str, Mapping[str, Any] | None]] = [
        (record.filename, record.validation) for record in files
    ]
    reports += [(item.filename, item.report) for item in planned if item.report is not None]
    for filename, report in reports:
        validation.input_report(
            filename,
            report,
            build=build.value,
            phasing=phasing.value,
            mode=mode.value,
            api_type=service.api_type,
        )
    await ensure_below_active_limit(session, owner_id, max_active_jobs, adding=adding)
    return CheckedRequest(
        name=name,
        description=description,
        service=service,
        panel=panel,
        build=build,
        phasing=phasing,
        population=population,
        mode=mode,
        r2_filter=r2_filter,
        files=tuple(files),
    )


async def preview_job(
    runtime: Runtime,
    *,
    owner_id: str,
    request: JobRequest,
    planned: Sequence[PlannedFile] = (),
) -> JobPreview:
    """The dry run of `create_job`: the same checks, the job it would make, nothing written.

    The session is never committed: closing it rolls back whatever the checks touched
    (the lock on the user's row that serialises job creation).
    """
    for item in planned:
        check_upload_size(item.size, runtime.settings.max_upload_size)
    async with runtime.db.sessionmaker() as session:
        checked = await check_request(
            session,
            owner_id=owner_id,
            request=request,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
            planned=planned,
        )
        return preview_of(checked, planned)


def preview_of(checked: CheckedRequest, planned: Sequence[PlannedFile]) -> JobPreview:
    """The job a checked request makes, as plain values (its files, then those to come)."""
    inputs = [PreviewInput(id=f.id, filename=f.filename, size=f.size) for f in checked.files]
    inputs += [PreviewInput(id=None, filename=p.filename, size=p.size) for p in planned]
    return JobPreview(
        name=checked.name,
        description=checked.description,
        service_id=checked.service.id,
        service_slug=checked.service.slug,
        reference_panel_id=checked.panel.id,
        reference_panel_slug=checked.panel.slug,
        build=checked.build.value,
        phasing=checked.phasing.value,
        population=checked.population,
        mode=checked.mode.value,
        r2_filter=checked.r2_filter,
        input_files=tuple(inputs),
    )


async def create_job(
    session: AsyncSession,
    *,
    owner_id: str,
    request: JobRequest,
    now: datetime,
    max_active_jobs: int,
    retry_of: str | None = None,
    credential_source: str | None = None,
) -> Job:
    """Validate `request` and add a pending job to the session; raises before adding anything.

    `credential_source` "platform" makes the job use the service's platform credential even
    if the owner has their own (registry/credentials.credential_for_job keeps it)."""
    checked = await check_request(
        session,
        owner_id=owner_id,
        request=request,
        max_active_jobs=max_active_jobs,
        credential_source=credential_source,
    )
    return await add_job(
        session,
        checked,
        owner_id=owner_id,
        now=now,
        retry_of=retry_of,
        credential_source=credential_source,
    )


def pending_job(*, owner_id: str, now: datetime, files: Sequence[StoredFile], **fields: Any) -> Job:
    """A new pending job row, due now, with `files` as its inputs and `fields` set."""
    return Job(
        id=new_id(),
        user_id=owner_id,
        status=JobStatus.PENDING.value,
        progress=0.0,
        service_logs=[],
        error_log=[],
        attempts=0,
        created_at=now,
        updated_at=now,
        next_run_at=now,
        inputs=[
            JobInput(file_id=record.id, position=i, file=record) for i, record in enumerate(files)
        ],
        **fields,
    )


async def add_job(
    session: AsyncSession,
    checked: CheckedRequest,
    *,
    owner_id: str,
    now: datetime,
    retry_of: str | None = None,
    credential_source: str | None = None,
    parent_id: str | None = None,
    target_index: int | None = None,
    notify: bool = True,
) -> Job:
    """Add the pending job a checked request makes (a federated job's child: `parent_id`)."""
    job = pending_job(
        owner_id=owner_id,
        now=now,
        files=checked.files,
        service_id=checked.service.id,
        reference_panel_id=checked.panel.id,
        retry_of=retry_of,
        parent_id=parent_id,
        target_index=target_index,
        notify=notify,
        name=checked.name,
        description=checked.description,
        build=checked.build.value,
        phasing=checked.phasing.value,
        population=checked.population,
        mode=checked.mode.value,
        r2_filter=checked.r2_filter,
        next_step=Step.SUBMIT.value,
        credential_source=credential_source,
    )
    session.add(job)
    await session.flush()
    message = "job created" if retry_of is None else f"job created (retry of {retry_of})"
    lifecycle.set_status(session, job, JobStatus.PENDING, now=now, message=message)
    log.info(
        "job created",
        extra={
            "action": "job_created",
            "job_id": job.id,
            "user_id": owner_id,
            "retry_of": retry_of,
            "parent_id": parent_id,
        },
    )
    return job


async def create_job_with_uploads(
    runtime: Runtime,
    *,
    owner_id: str,
    request: JobRequest,
    uploads: Sequence[StagedUpload] = (),
    now: datetime,
) -> Job:
    """Record the request's staged files and create the job from them in one transaction.

    Uploaded files come after any `input_file_ids`. If the job is refused, the uploaded
    files' bytes are removed again.

    The write lock is short: every check reads before it (nothing slow, no storage I/O,
    inside).
    """
    try:
        async with runtime.db.session() as session:
            full = request
            if uploads:  # recording them writes (and locks the user, for the quota)
                records = await record_uploads(
                    session,
                    user_id=owner_id,
                    staged=uploads,
                    now=now,
                    quota=runtime.settings.storage_quota_bytes,
                )
                await session.flush()
                full = dataclasses.replace(
                    request,
                    input_file_ids=(*request.input_file_ids, *(r.id for r in records)),
                )
            job = await create_job(
                session,
                owner_id=owner_id,
                request=full,
                now=now,
                max_active_jobs=runtime.settings.max_active_jobs_per_user,
            )
    except BaseException:
        await discard(runtime.storage, uploads)
        raise
    return job
