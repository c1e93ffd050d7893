"""Retention: the worker removes input and result files older than the configured age,
and what crashes left in storage.

Each file goes in a transaction of its own that holds the file's row (so no job can
take it as an input meanwhile): bytes first, then the row, so a failure leaves a row to
retry, never bytes nobody can find. A file an active job still uses is kept. The jobs
that used a removed file stay, marked with `files_expired_at`.

Litter (`sweep_litter`, about once an hour per worker, whatever the retention ages): writes
cut short by a crash (local `.tmp` files, S3 multipart uploads) once untouched for a day,
and the fetch bookkeeping of finished jobs (`results/{job}/.fetched/` marks and
`.downloads/` kept segments), which the worker that finishes a job removes at once
(`discard_fetch_state`) unless it dies first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.clock import Interval
from imputehub.db.models import Job, JobInput, StoredFile, Upload
from imputehub.db.session import lock_row
from imputehub.domain.jobs import ACTIVE
from imputehub.domain.uploads import UploadStatus
from imputehub.files.storage import Storage
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

BATCH_SIZE = 100
MAX_PER_RUN = 1000
_ACTIVE = [status.value for status in ACTIVE]
# A partial write untouched this long has no writer left (a live one keeps writing, and no
# step holds a job for long); younger ones may still be written.
PARTIAL_AGE = timedelta(days=1)
SWEEP_EVERY = timedelta(hours=1)
# Where a fetch keeps its bookkeeping, under the job's `results/{job_id}/`: marks of the
# service files stored completely, and downloads kept while they arrive (worker/sink.py).
FETCHED_DIR = ".fetched"
DOWNLOADS_DIR = ".downloads"


def _in_use() -> ColumnElement[bool]:
    """The file is an input, or a result, of a job that is not finished."""
    as_input = exists(
        select(JobInput.file_id)
        .join(Job, Job.id == JobInput.job_id)
        .where(JobInput.file_id == StoredFile.id, Job.status.in_(_ACTIVE))
    )
    as_result = exists(select(Job.id).where(Job.id == StoredFile.job_id, Job.status.in_(_ACTIVE)))
    return or_(as_input, as_result)


def cutoffs(runtime: Runtime, now: datetime) -> dict[str, datetime]:
    """File kind -> files created before this time are due (kinds kept forever are absent)."""
    settings = runtime.settings
    ages = {"result": settings.retention_days_results, "input": settings.retention_days_inputs}
    return {kind: now - timedelta(days=days) for kind, days in ages.items() if days is not None}


async def expire_files(runtime: Runtime, *, now: datetime, max_files: int = MAX_PER_RUN) -> int:
    """Remove files past their kind's age that no active job uses; returns how many.

    At most `max_files` per call, so one sweep never holds up a worker's loop for long;
    the rest go in the next sweeps.
    """
    removed = 0
    for kind, cutoff in cutoffs(runtime, now).items():
        after: tuple[datetime, str] | None = None
        while removed < max_files:
            due = await _due_batch(runtime, kind=kind, cutoff=cutoff, after=after)
            if not due:
                break
            for _created_at, file_id in due[: max_files - removed]:
                if await _expire_one(runtime, file_id, kind=kind, cutoff=cutoff, now=now):
                    removed += 1
            after = due[-1]
    if removed:
        log.info("expired files removed", extra={"action": "files_expired", "count": removed})
    return removed


async def _due_batch(
    runtime: Runtime, *, kind: str, cutoff: datetime, after: tuple[datetime, str] | None
) -> list[tuple[datetime, str]]:
    """The next files due, in (created_at, id) order after `after` (keyset pagination)."""
    statement = (
        select(StoredFile.created_at, StoredFile.id)
        .where(StoredFile.kind == kind, StoredFile.created_at < cutoff, ~_in_use())
        .order_by(StoredFile.created_at, StoredFile.id)
        .limit(BATCH_SIZE)
    )
    if after is not None:
        statement = statement.where(
            or_(
                StoredFile.created_at > after[0],
                and_(StoredFile.created_at == after[0], StoredFile.id > after[1]),
            )
        )
    async with runtime.db.session() as session:
        return [(row.created_at, row.id) for row in await session.execute(statement)]


async def _expire_one(
    runtime: Runtime, file_id: str, *, kind: str, cutoff: datetime, now: datetime
) -> bool:
    async with runtime.db.session() as session:
        await lock_row(session, StoredFile, file_id)
        record = await session.scalar(
            select(StoredFile).where(
                StoredFile.id == file_id,
                StoredFile.kind == kind,
                StoredFile.created_at < cutoff,
                ~_in_use(),
            )
        )
        if record is None:
            return False
        # Bytes first, inside the transaction: if this fails the row stays for next time.
        await runtime.storage.delete(record.storage_key)
        await _mark_jobs(session, record, now=now)
        await session.execute(delete(JobInput).where(JobInput.file_id == record.id))
        await session.delete(record)
    log.info(
        "expired file removed",
        extra={"action": "file_expired", "file_id": file_id, "kind": kind},
    )
    return True


async def _mark_jobs(session: AsyncSession, record: StoredFile, *, now: datetime) -> None:
    users = select(JobInput.job_id).where(JobInput.file_id == record.id)
    owner = Job.id == record.job_id if record.job_id is not None else false()
    await session.execute(
        update(Job)
        .where(or_(Job.id.in_(users), owner), Job.files_expired_at.is_(None))
        .values(files_expired_at=now)
    )


# ---- litter: partial writes and finished jobs' fetch bookkeeping ---------------------------


def results_folder(job_id: str) -> str:
    return f"results/{job_id}/"


async def discard_fetch_state(storage: Storage, job_id: str) -> None:
    """Remove what fetching the job's results kept: marks, kept downloads, partial writes.

    Only once no step of the job can write there any more (it is finished), or by the step
    holding its lease; idempotent.
    """
    folder = results_folder(job_id)
    await storage.delete_folder(f"{folder}{FETCHED_DIR}/")
    await storage.delete_folder(f"{folder}{DOWNLOADS_DIR}/")
    await storage.discard_partials(folder, before=None)


@dataclass(frozen=True, kw_only=True)
class Swept:
    partials: int  # partial writes removed
    jobs: int  # finished jobs whose fetch bookkeeping was removed


async def sweep_litter(
    runtime: Runtime, *, now: datetime, partial_age: timedelta = PARTIAL_AGE
) -> Swept:
    """Remove partial writes older than `partial_age` (resumable uploads in progress are
    kept) and the fetch bookkeeping of every finished (or deleted) job."""
    async with runtime.db.session() as session:
        open_uploads = set(
            await session.scalars(
                select(Upload.storage_handle).where(Upload.status != UploadStatus.COMPLETED.value)
            )
        )
    partials = await runtime.storage.discard_partials(
        "", before=now - partial_age, keep=open_uploads
    )
    with_state: set[str] = set()
    async for key in runtime.storage.list_keys("results/"):
        parts = key.split("/")  # results/{job}/.fetched/..., or an empty `.fetched/`
        if len(parts) > 3 and parts[2] in (FETCHED_DIR, DOWNLOADS_DIR):
            with_state.add(parts[1])
    finished = with_state - await _active(runtime, with_state)
    for job_id in sorted(finished):
        await discard_fetch_state(runtime.storage, job_id)
    if partials or finished:
        log.info(
            "storage litter removed",
            extra={"action": "litter_swept", "partials": partials, "jobs": len(finished)},
        )
    return Swept(partials=partials, jobs=len(finished))


async def _active(runtime: Runtime, job_ids: set[str]) -> set[str]:
    ids = sorted(job_ids)
    active: set[str] = set()
    async with runtime.db.session() as session:
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            active.update(
                await session.scalars(
                    select(Job.id).where(Job.id.in_(batch), Job.status.in_(_ACTIVE))
                )
            )
    return active


@dataclass
class RetentionTimer:
    """Runs `expire_files` at most once per interval in one worker process, and
    `sweep_litter` at most once per `sweep_every`."""

    runtime: Runtime
    interval: Interval = field(default_factory=Interval)
    litter: Interval = field(default_factory=Interval)
    sweep_every: timedelta = SWEEP_EVERY
    partial_age: timedelta = PARTIAL_AGE

    async def sweep_if_due(self, now: datetime) -> Swept | None:
        if not self.litter.due(now, self.sweep_every):
            return None
        return await sweep_litter(self.runtime, now=now, partial_age=self.partial_age)

    async def run_if_due(self, now: datetime) -> int | None:
        if not cutoffs(self.runtime, now):
            return None
        every = timedelta(seconds=self.runtime.settings.retention_interval_seconds)
        if not self.interval.due(now, every):
            return None
        return await expire_files(self.runtime, now=now)
