"""What a worker step knows about its job before it calls the service (`Context`): read in
one short transaction (`load`), or for a poll from the row read with its claim
(`from_poll_row`, no query); for a submit also the job's spec with its inputs' readers and
signed links.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import Connector, InputFile, JobSpec, ServiceInfo
from imputehub.db.models import Job, ReferencePanel, Service, StoredFile
from imputehub.domain.jobs import JobStatus, Step
from imputehub.domain.slots import slot_limit
from imputehub.files.links import LinkSigner
from imputehub.jobs import slots
from imputehub.registry import lookup
from imputehub.registry.credentials import PLATFORM, credential_for_job
from imputehub.runtime import Runtime
from imputehub.worker import leases
from imputehub.worker.leases import Claim
from imputehub.worker.poll_context import PollRow
from imputehub.worker.quiet_polls import JobView


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a step knows about its job, read before the service is called."""

    claim: Claim
    step: Step
    user_id: str
    created_at: datetime
    external_job_id: str | None
    submit_started_at: datetime | None
    service: ServiceInfo
    service_name: str
    time_limit_seconds: float
    slot_limit: int | None  # jobs the account may have at the service at once
    attempts: int  # transient failures counted so far
    connector: Connector | None
    credential: str | None = field(repr=False)
    credential_source: str
    secret: str | None = field(repr=False)  # the job's secret for the service, if made
    new_secret: str | None = field(repr=False)  # encrypted; to record with the intent
    spec: JobSpec | None  # only for the submit step
    view: JobView | None = None  # for a poll that may turn out quiet (quiet_polls.py)

    @property
    def job_id(self) -> str:
        return self.claim.job_id


async def load(runtime: Runtime, claim: Claim) -> Context | None:
    async with runtime.db.session() as session:
        job = await leases.lock_for_step(session, claim)
        if job is None:
            return None
        service = await session.get(Service, job.service_id)
        assert service is not None  # a foreign key
        step = Step(claim.step)
        credential, source = await credential_for_job(
            session,
            runtime.vault,
            service,
            user_id=job.user_id,
            source=job.credential_source,
        )
        new_secret: str | None = None
        if job.service_secret_encrypted is not None:
            secret: str | None = runtime.vault.decrypt(job.service_secret_encrypted)
        elif step == Step.SUBMIT:
            secret = make_secret()
            new_secret = runtime.vault.encrypt(secret)
        else:
            secret = None
        return Context(
            claim=claim,
            step=step,
            user_id=job.user_id,
            created_at=job.created_at,
            external_job_id=job.external_job_id,
            submit_started_at=job.submit_started_at,
            service=lookup.service_info(service),
            service_name=service.name,
            time_limit_seconds=(
                service.job_time_limit_seconds or runtime.settings.job_time_limit_seconds
            ),
            slot_limit=slots.limit_of(service),
            attempts=job.attempts,
            connector=runtime.connectors.get(service.api_type),
            credential=credential,
            credential_source=source,
            secret=secret,
            new_secret=new_secret,
            spec=await job_spec(runtime, session, job, secret) if step == Step.SUBMIT else None,
        )


def from_poll_row(runtime: Runtime, claim: Claim, row: PollRow) -> Context | None:
    """A poll's context from the row read with its claim (poll_context.py), no query.

    None when the row shows anything unusual (the job wants another step now, or a user's
    own credential): `load`'s queries handle those.
    """
    if row.next_step != claim.step or row.credential_source != PLATFORM:
        return None
    config = dict(row.api_config or {})
    secret = row.service_secret_encrypted
    credential = row.credential_encrypted
    return Context(
        claim=claim,
        step=Step.POLL,
        user_id=row.user_id,
        created_at=row.created_at,
        external_job_id=row.external_job_id,
        submit_started_at=row.submit_started_at,
        service=ServiceInfo(
            id=row.service_id,
            slug=row.service_slug,
            api_type=row.api_type,
            base_url=row.base_url,
            api_config=config,
        ),
        service_name=row.service_name,
        time_limit_seconds=(row.job_time_limit_seconds or runtime.settings.job_time_limit_seconds),
        slot_limit=slot_limit(row.api_type, config),
        attempts=row.attempts,
        connector=runtime.connectors.get(row.api_type),
        credential=None if credential is None else runtime.vault.decrypt(credential),
        credential_source=PLATFORM,
        secret=None if secret is None else runtime.vault.decrypt(secret),
        new_secret=None,
        spec=None,
        view=JobView(
            status=JobStatus(row.status),
            progress=row.progress,
            attempts=row.attempts,
            logs=list(row.service_logs or []),
            queue_position=row.service_queue_position,
            deletes_results_at=row.service_deletes_results_at,
            last_message=row.last_message,
        ),
    )


def make_secret(length: int = 32) -> str:
    """Letters and digits only: Michigan HTML-escapes other characters in passwords."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def job_spec(
    runtime: Runtime, session: AsyncSession, job: Job, secret: str | None
) -> JobSpec:
    panel = await session.get(ReferencePanel, job.reference_panel_id)
    assert panel is not None  # a foreign key
    return JobSpec(
        job_id=job.id,
        name=job.name,
        panel_id=panel.panel_id,
        build=job.build,
        phasing=job.phasing,
        population=job.population,
        mode=job.mode,
        r2_filter=job.r2_filter,
        secret=secret,
        inputs=[
            InputFile(
                name=item.file.filename,
                size=item.file.size,
                sha256=item.file.sha256,
                open=_reader(runtime, item.file.storage_key),
                url=_link(runtime, job.id, item.file),
            )
            for item in job.inputs
        ],
    )


def _link(runtime: Runtime, job_id: str, file: StoredFile) -> str | None:
    """A signed link to the input at the hub, for services that download inputs."""
    settings = runtime.settings
    if not settings.public_url:
        return None
    expires_at = runtime.clock.now() + timedelta(seconds=settings.input_link_seconds)
    signer = LinkSigner.from_secret_key(runtime.secret_key)
    return signer.url(settings.public_url, job_id, file.id, file.filename, expires_at)


def _reader(runtime: Runtime, key: str) -> Callable[[], AsyncIterator[bytes]]:
    return lambda: runtime.storage.read(key)
