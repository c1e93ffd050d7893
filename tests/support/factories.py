"""Rows for tests, written straight through the models (no API round trips)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from imputehub.db.models import (
    Job,
    JobInput,
    ReferencePanel,
    Service,
    StoredFile,
    User,
    UserServiceCredential,
)
from imputehub.domain.jobs import JobStatus, Step
from imputehub.files.vcf_check import check_bytes
from imputehub.runtime import Runtime
from tests.support import vcf


async def make_user(runtime: Runtime, *, email: str, role: str = "user") -> User:
    """A user who never logs in (no slow password hash), named after the address."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(
            username=email.split("@")[0],
            email=email,
            password_hash="!",
            role=role,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
    return user


async def make_user_credential(
    runtime: Runtime, user_id: str, service: Service, credential: str
) -> UserServiceCredential:
    """The user's own credential for `service`, encrypted as the hub keeps it."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        row = UserServiceCredential(
            user_id=user_id,
            service_id=service.id,
            credential_encrypted=runtime.vault.encrypt(credential),
            last_four=credential[-4:],
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    return row


async def make_service(runtime: Runtime, **fields: Any) -> Service:
    now = runtime.clock.now()
    slug = fields.pop("slug", f"svc-{uuid.uuid4().hex[:8]}")
    values: dict[str, Any] = {
        "name": f"Service {slug}",
        "slug": slug,
        "api_type": "michigan",
        "base_url": "https://imputation.example.org",
        "supported_builds": ["hg19", "hg38"],
        "api_config": {},
        "is_active": True,
        "health_status": "healthy",
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    async with runtime.db.session() as session:
        service = Service(**values)
        session.add(service)
    return service


async def make_panel(runtime: Runtime, service: Service, **fields: Any) -> ReferencePanel:
    now = runtime.clock.now()
    slug = fields.pop("slug", f"panel-{uuid.uuid4().hex[:8]}")
    values: dict[str, Any] = {
        "service_id": service.id,
        "slug": slug,
        "panel_id": f"apps@{slug}@1.0.0",
        "display_name": f"Panel {slug}",
        "build": "hg19",
        "populations": ["afr", "eur", "mixed"],
        "is_active": True,
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    async with runtime.db.session() as session:
        panel = ReferencePanel(**values)
        session.add(panel)
    return panel


async def make_file(
    runtime: Runtime, user_id: str, content: bytes | None = None, **fields: Any
) -> StoredFile:
    """A stored input file: bytes in storage and its record.

    By default a small valid VCF (20 phased samples, hg19 chr20, bgzipped); an input's
    record carries the VCF report of its bytes, as an upload's does.
    """
    if content is None:
        content = vcf.make_vcf()
    key = f"inputs/{user_id}_{uuid.uuid4().hex}.vcf.gz"

    async def chunks():  # type: ignore[no-untyped-def]
        yield content

    written = await runtime.storage.write(key, chunks())
    values: dict[str, Any] = {
        "user_id": user_id,
        "kind": "input",
        "filename": "study.chr20.vcf.gz",
        "storage_key": key,
        "size": written.size,
        "sha256": hashlib.sha256(content).hexdigest(),
        "created_at": runtime.clock.now(),
    }
    if fields.get("kind", "input") == "input":
        values["validation"] = check_bytes([content]).to_dict()
    values.update(fields)
    async with runtime.db.session() as session:
        record = StoredFile(**values)
        session.add(record)
    return record


async def make_job(
    runtime: Runtime,
    *,
    user_id: str,
    service: Service,
    panel: ReferencePanel,
    files: list[StoredFile],
    **fields: Any,
) -> Job:
    """A freshly created job, due for submission (as POST /jobs leaves it)."""
    now = runtime.clock.now()
    values: dict[str, Any] = {
        "user_id": user_id,
        "service_id": service.id,
        "reference_panel_id": panel.id,
        "name": "test job",
        "status": JobStatus.PENDING.value,
        "progress": 0.0,
        "build": panel.build,
        "phasing": "eagle",
        "population": "mixed",
        "mode": "imputation",
        "created_at": now,
        "updated_at": now,
        "next_step": Step.SUBMIT.value,
        "next_run_at": now,
        "attempts": 0,
        "service_logs": [],
        "error_log": [],
    }
    values.update(fields)
    async with runtime.db.session() as session:
        job = Job(**values)
        job.inputs = [JobInput(file_id=f.id, position=i) for i, f in enumerate(files)]
        session.add(job)
    return job
