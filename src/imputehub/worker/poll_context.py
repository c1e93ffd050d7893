"""What the polls of one claim need to know, read in one statement with the claim.

Loading each poll's job, service and last status message on its own cost several queries
and transactions per poll; following thousands of jobs, that was most of a poll's database
work. The worker loop instead reads them for every poll it just claimed, in the claim's
own transaction (the rows are locked by it, so what is read is what the lease starts
from), and hands each step its row. A step whose row shows anything unusual (another step
is due, or a user's own credential) loads its context the usual way (step_context.load).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobStatusUpdate, Service
from imputehub.domain.jobs import Step
from imputehub.worker.leases import Claim

PollRow = Row[*tuple[Any, ...]]


async def load(session: AsyncSession, claims: Sequence[Claim]) -> dict[str, PollRow]:
    """The rows of the polls among `claims` still leased to them, by job id."""
    owners = {c.job_id: c.owner for c in claims if c.step == Step.POLL.value}
    if not owners:
        return {}
    last_message = (
        select(JobStatusUpdate.message)
        .where(JobStatusUpdate.job_id == Job.id)
        .order_by(JobStatusUpdate.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("last_message")
    )
    result = await session.execute(
        select(
            Job.id,
            Job.lease_owner,
            Job.next_step,
            Job.user_id,
            Job.created_at,
            Job.external_job_id,
            Job.submit_started_at,
            Job.attempts,
            Job.status,
            Job.progress,
            Job.service_logs,
            Job.service_queue_position,
            Job.service_deletes_results_at,
            Job.service_secret_encrypted,
            Job.credential_source,
            Service.id.label("service_id"),
            Service.name.label("service_name"),
            Service.slug.label("service_slug"),
            Service.api_type,
            Service.base_url,
            Service.api_config,
            Service.credential_encrypted,
            Service.job_time_limit_seconds,
            last_message,
        )
        .join(Service, Service.id == Job.service_id)
        .where(Job.id.in_(owners))
    )
    return {row.id: row for row in result if row.lease_owner == owners[row.id]}
