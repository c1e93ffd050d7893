"""Service use cases: register, edit, deactivate, list and read imputation services.

Each function works in the caller's transaction. Writes need an admin; reads show users
only what they may use (active services; in discovery lists, only healthy ones too).
The platform credential is encrypted with the vault on the way in and never read back here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import is_admin, require_admin
from imputehub.accounts.vault import Vault
from imputehub.connectors.base import HealthStatus
from imputehub.db.models import Job, ReferencePanel, Service, ServiceHealthCheck, User
from imputehub.domain.errors import Conflict, InvalidInput, PermissionDenied
from imputehub.domain.jobs import ACTIVE
from imputehub.registry import lookup, rules

log = logging.getLogger("imputehub.registry")

MAX_NAME_LENGTH = 200
MAX_LOCATION_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_JOB_TIME_LIMIT_SECONDS = 366 * 24 * 3600
MAX_UPLOAD_SIZE = 2**63 - 1
MAX_HISTORY_LIMIT = 500

# Changing these makes the last health result meaningless: check again at once.
_RECHECK_FIELDS = frozenset({"api_type", "base_url", "api_config"})
_REQUIRED_FIELDS = frozenset(
    {"name", "slug", "api_type", "base_url", "supported_builds", "api_config", "is_active"}
)


@dataclass(frozen=True, kw_only=True)
class ServiceInput:
    """What an admin gives to register a service."""

    name: str
    api_type: str
    base_url: str
    slug: str | None = None
    description: str = ""
    location: str = ""
    supported_builds: Sequence[str] = ()
    max_upload_size: int | None = None
    api_config: Mapping[str, Any] = field(default_factory=dict)
    credential: str | None = None
    job_time_limit_seconds: float | None = None
    is_active: bool = True


def _clean(name: str, value: Any) -> Any:
    """One field's value checked by the registry rules (None passed only where allowed)."""
    if value is None:
        if name in _REQUIRED_FIELDS:
            raise InvalidInput(f"{name} must not be null", field=name)
        if name in ("description", "location"):
            return ""
        return None
    if name == "name":
        return rules.check_text(value, field="name", max_length=MAX_NAME_LENGTH)
    if name == "slug":
        return rules.check_slug(value)
    if name == "api_type":
        return rules.check_api_type(value)
    if name == "base_url":
        return rules.check_base_url(value)
    if name == "description":
        return rules.check_long_text(value, field="description", max_length=MAX_DESCRIPTION_LENGTH)
    if name == "location":
        return rules.check_text(
            value, field="location", max_length=MAX_LOCATION_LENGTH, required=False
        )
    if name == "supported_builds":
        return rules.check_builds(value)
    if name == "max_upload_size":
        if isinstance(value, bool) or not 0 < value <= MAX_UPLOAD_SIZE:
            raise InvalidInput("max_upload_size must be a positive number of bytes", field=name)
        return int(value)
    if name == "api_config":
        return rules.check_api_config(value)
    if name == "credential":
        return rules.check_credential(value)
    if name == "job_time_limit_seconds":
        if isinstance(value, bool) or not 0 < value <= MAX_JOB_TIME_LIMIT_SECONDS:
            raise InvalidInput(
                f"job_time_limit_seconds must be positive and at most {MAX_JOB_TIME_LIMIT_SECONDS}",
                field=name,
            )
        return float(value)
    if name == "is_active":
        return bool(value)
    raise InvalidInput(f"unknown field '{name}'", field=name)


async def _ensure_slug_free(session: AsyncSession, slug: str, *, own_id: str | None) -> None:
    query = select(Service.id).where(Service.slug == slug)
    if own_id is not None:
        query = query.where(Service.id != own_id)
    if await session.scalar(query) is not None:
        raise Conflict(
            f"a service with slug '{slug}' already exists; choose another slug",
            code="slug_taken",
            field="slug",
        )


async def _flush(session: AsyncSession, slug: str) -> None:
    # The unique index has the last word when two admins race for one slug.
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"a service with slug '{slug}' already exists; choose another slug",
            code="slug_taken",
            field="slug",
        ) from exc


async def create_service(
    session: AsyncSession, vault: Vault, actor: User, data: ServiceInput, *, now: datetime
) -> Service:
    require_admin(actor)
    given = asdict(data)
    credential = _clean("credential", given.pop("credential"))
    slug = given.pop("slug")
    values = {name: _clean(name, value) for name, value in given.items()}
    values["slug"] = _clean("slug", slug) if slug is not None else rules.derive_slug(values["name"])
    await _ensure_slug_free(session, values["slug"], own_id=None)
    service = Service(
        **values,
        credential_encrypted=vault.encrypt(credential) if credential is not None else None,
        health_status=HealthStatus.UNKNOWN.value,
        health_next_run_at=now,  # the worker checks a new service at once
        created_at=now,
        updated_at=now,
    )
    session.add(service)
    await _flush(session, service.slug)
    log.info(
        "service registered",
        extra={"action": "service_created", "service_id": service.id, "actor_id": actor.id},
    )
    return service


async def update_service(
    session: AsyncSession,
    vault: Vault,
    actor: User,
    ref: str,
    changes: Mapping[str, Any],
    *,
    now: datetime,
) -> Service:
    """Apply the fields present in `changes`; `credential: None` clears the credential."""
    require_admin(actor)
    service = await lookup.get_service(session, ref, include_inactive=True)
    # Check everything before touching the row, so a rejected edit changes nothing.
    cleaned = {name: _clean(name, value) for name, value in changes.items()}
    if "slug" in cleaned and cleaned["slug"] != service.slug:
        await _ensure_slug_free(session, cleaned["slug"], own_id=service.id)
    if cleaned.get("supported_builds"):
        await _ensure_builds_cover_panels(session, service, cleaned["supported_builds"])
    was_active = service.is_active
    for name, value in cleaned.items():
        if name == "credential":
            service.credential_encrypted = vault.encrypt(value) if value is not None else None
            # A new credential has not been verified; the old verdict was about another one.
            service.credential_verified = None
            service.credential_verified_at = None
            service.credential_expires_at = None
        else:
            setattr(service, name, value)
    if cleaned.keys() & _RECHECK_FIELDS or (service.is_active and not was_active):
        service.health_next_run_at = now
    service.updated_at = now
    await _flush(session, service.slug)
    log.info(
        "service updated",
        extra={
            "action": "service_updated",
            "service_id": service.id,
            "actor_id": actor.id,
            "fields": sorted(cleaned),
        },
    )
    return service


async def _ensure_builds_cover_panels(
    session: AsyncSession, service: Service, builds: Sequence[str]
) -> None:
    used = set(
        await session.scalars(
            select(ReferencePanel.build).where(
                ReferencePanel.service_id == service.id, ReferencePanel.is_active.is_(True)
            )
        )
    )
    dropped = sorted(used - set(builds))
    if dropped:
        raise Conflict(
            f"active reference panels of this service use {', '.join(dropped)}; "
            "deactivate them first or keep the build",
            field="supported_builds",
        )


async def deactivate_service(
    session: AsyncSession, actor: User, ref: str, *, now: datetime
) -> Service:
    """Hide the service from users; the row stays because jobs point at it."""
    require_admin(actor)
    service = await lookup.get_service(session, ref, include_inactive=True)
    if service.is_active:
        service.is_active = False
        service.updated_at = now
        log.info(
            "service deactivated",
            extra={"action": "service_deactivated", "service_id": service.id, "actor_id": actor.id},
        )
    return service


async def list_services(
    session: AsyncSession, actor: User, *, include_all: bool = False
) -> list[Service]:
    """Discovery: active, healthy services. `include_all` (admins only): every service."""
    query = select(Service).order_by(Service.name, Service.slug)
    if include_all:
        if not is_admin(actor):
            raise PermissionDenied("only admins may list all services")
    else:
        query = query.where(
            Service.is_active.is_(True), Service.health_status == HealthStatus.HEALTHY.value
        )
    return list(await session.scalars(query))


async def get_service(session: AsyncSession, actor: User, ref: str) -> Service:
    """A service by id or slug: users see active ones, admins any."""
    return await lookup.get_service(session, ref, include_inactive=is_admin(actor))


async def health_history(
    session: AsyncSession, actor: User, ref: str, *, limit: int = 50
) -> list[ServiceHealthCheck]:
    """The service's latest health checks, newest first."""
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY_LIMIT}", field="limit")
    service = await get_service(session, actor, ref)
    rows = await session.scalars(
        select(ServiceHealthCheck)
        .where(ServiceHealthCheck.service_id == service.id)
        .order_by(ServiceHealthCheck.checked_at.desc(), ServiceHealthCheck.id.desc())
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True, kw_only=True)
class ServiceLoad:
    """An active service, its last health check (on the row) and the hub's load on it."""

    service: Service
    # The hub's jobs at or waiting for the service that have not ended, everyone's: a
    # count only, so no one learns whose they are.
    active_jobs: int


async def service_loads(session: AsyncSession) -> list[ServiceLoad]:
    """Every active service, healthy or not (users may see any active one), with its load."""
    found = list(
        await session.scalars(
            select(Service).where(Service.is_active.is_(True)).order_by(Service.name, Service.slug)
        )
    )
    rows = await session.execute(
        select(Job.service_id, func.count())
        .where(Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.service_id)
    )
    counts = {service_id: int(count) for service_id, count in rows}
    return [ServiceLoad(service=s, active_jobs=int(counts.get(s.id, 0))) for s in found]
