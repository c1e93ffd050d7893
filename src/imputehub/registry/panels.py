"""Reference panel use cases: register, edit, deactivate, list and read panels.

Each function works in the caller's transaction. Writes need an admin; users see active
panels of active services only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import is_admin, require_admin
from imputehub.db.models import ReferencePanel, Service, User
from imputehub.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from imputehub.monitoring import audit
from imputehub.registry import lookup, rules

log = logging.getLogger("imputehub.registry")

MAX_PANEL_ID_LENGTH = 300
MAX_DISPLAY_NAME_LENGTH = 300
MAX_DESCRIPTION_LENGTH = 10_000
MAX_SAMPLE_COUNT = 2**31 - 1
MAX_VARIANT_COUNT = 2**63 - 1

_REQUIRED_FIELDS = frozenset(
    {"panel_id", "display_name", "slug", "build", "populations", "is_active"}
)


@dataclass(frozen=True, kw_only=True)
class PanelInput:
    """What an admin gives to register a panel; `service` is the service's id or slug."""

    service: str
    panel_id: str
    display_name: str
    build: str
    slug: str | None = None
    populations: Sequence[str] = ()
    sample_count: int | None = None
    variant_count: int | None = None
    description: str = ""
    is_active: bool = True


def _count(value: Any, *, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not 0 <= value <= maximum:
        raise InvalidInput(f"{field} must be a whole number from 0 to {maximum}", field=field)
    return int(value)


def _clean(name: str, value: Any) -> Any:
    if value is None:
        if name in _REQUIRED_FIELDS:
            raise InvalidInput(f"{name} must not be null", field=name)
        return "" if name == "description" else None
    if name == "panel_id":
        return rules.check_text(value, field="panel_id", max_length=MAX_PANEL_ID_LENGTH)
    if name == "display_name":
        return rules.check_text(value, field="display_name", max_length=MAX_DISPLAY_NAME_LENGTH)
    if name == "slug":
        return rules.check_slug(value)
    if name == "build":
        return rules.check_build(value)
    if name == "populations":
        return rules.check_populations(value)
    if name == "sample_count":
        return _count(value, field=name, maximum=MAX_SAMPLE_COUNT)
    if name == "variant_count":
        return _count(value, field=name, maximum=MAX_VARIANT_COUNT)
    if name == "description":
        return rules.check_long_text(value, field="description", max_length=MAX_DESCRIPTION_LENGTH)
    if name == "is_active":
        return bool(value)
    raise InvalidInput(f"unknown field '{name}'", field=name)


def _check_build_offered(service: Service, build: str) -> None:
    if service.supported_builds and build not in service.supported_builds:
        raise InvalidInput(
            f"service '{service.slug}' does not support build {build} "
            f"(it supports {', '.join(service.supported_builds)})",
            field="build",
        )


async def _ensure_unique(
    session: AsyncSession,
    *,
    service_id: str,
    panel_id: str | None,
    slug: str | None,
    own_id: str | None,
) -> None:
    if panel_id is not None:
        query = select(ReferencePanel.id).where(
            ReferencePanel.service_id == service_id, ReferencePanel.panel_id == panel_id
        )
        if own_id is not None:
            query = query.where(ReferencePanel.id != own_id)
        if await session.scalar(query) is not None:
            raise Conflict(
                f"this service already has a panel with panel_id '{panel_id}'",
                code="panel_id_taken",
                field="panel_id",
            )
    if slug is not None:
        query = select(ReferencePanel.id).where(ReferencePanel.slug == slug)
        if own_id is not None:
            query = query.where(ReferencePanel.id != own_id)
        if await session.scalar(query) is not None:
            raise Conflict(
                f"a reference panel with slug '{slug}' already exists; choose another slug",
                code="slug_taken",
                field="slug",
            )


async def _flush(session: AsyncSession) -> None:
    # The unique indexes have the last word when two admins race.
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "another reference panel with this slug or panel_id was just registered",
            code="panel_taken",
        ) from exc


async def _service_for_write(session: AsyncSession, ref: str) -> Service:
    # A service named in the body that does not exist is bad input, not a missing URL.
    try:
        return await lookup.get_service(session, ref, include_inactive=True)
    except NotFound as exc:
        raise InvalidInput(f"no service '{ref}'", field="service_id") from exc


async def create_panel(
    session: AsyncSession,
    actor: User,
    data: PanelInput,
    *,
    now: datetime,
    origin: audit.Origin | None = None,
) -> ReferencePanel:
    require_admin(actor)
    service = await _service_for_write(session, data.service)
    given = asdict(data)
    del given["service"]
    slug = given.pop("slug")
    values = {name: _clean(name, value) for name, value in given.items()}
    _check_build_offered(service, values["build"])
    values["slug"] = (
        _clean("slug", slug)
        if slug is not None
        else rules.derive_slug(service.slug, values["display_name"])
    )
    await _ensure_unique(
        session,
        service_id=service.id,
        panel_id=values["panel_id"],
        slug=values["slug"],
        own_id=None,
    )
    panel = ReferencePanel(service_id=service.id, **values, created_at=now, updated_at=now)
    session.add(panel)
    await _flush(session)
    log.info(
        "reference panel registered",
        extra={"action": "panel_created", "reference_panel_id": panel.id, "actor_id": actor.id},
    )
    await audit.record_change(
        session,
        action="panel_created",
        actor=actor,
        target_type="reference_panel",
        target_id=panel.id,
        slug=panel.slug,
        fields=given,
        origin=origin,
        now=now,
    )
    return panel


async def update_panel(
    session: AsyncSession,
    actor: User,
    ref: str,
    changes: Mapping[str, Any],
    *,
    now: datetime,
    origin: audit.Origin | None = None,
) -> ReferencePanel:
    require_admin(actor)
    panel = await lookup.get_panel(session, ref, include_inactive=True)
    cleaned = {name: _clean(name, value) for name, value in changes.items()}
    service = await lookup.get_service(session, panel.service_id, include_inactive=True)
    build = cleaned.get("build", panel.build)
    if "build" in cleaned or cleaned.get("is_active"):
        _check_build_offered(service, build)
    await _ensure_unique(
        session,
        service_id=service.id,
        panel_id=cleaned.get("panel_id"),
        slug=cleaned.get("slug"),
        own_id=panel.id,
    )
    for name, value in cleaned.items():
        setattr(panel, name, value)
    panel.updated_at = now
    await _flush(session)
    log.info(
        "reference panel updated",
        extra={
            "action": "panel_updated",
            "reference_panel_id": panel.id,
            "actor_id": actor.id,
            "fields": sorted(cleaned),
        },
    )
    await audit.record_change(
        session,
        action="panel_updated",
        actor=actor,
        target_type="reference_panel",
        target_id=panel.id,
        slug=panel.slug,
        fields=cleaned,
        origin=origin,
        now=now,
    )
    return panel


async def deactivate_panel(
    session: AsyncSession,
    actor: User,
    ref: str,
    *,
    now: datetime,
    origin: audit.Origin | None = None,
) -> ReferencePanel:
    """Hide the panel from users; the row stays because jobs point at it."""
    require_admin(actor)
    panel = await lookup.get_panel(session, ref, include_inactive=True)
    if panel.is_active:
        panel.is_active = False
        panel.updated_at = now
        log.info(
            "reference panel deactivated",
            extra={
                "action": "panel_deactivated",
                "reference_panel_id": panel.id,
                "actor_id": actor.id,
            },
        )
        await audit.record_change(
            session,
            action="panel_deactivated",
            actor=actor,
            target_type="reference_panel",
            target_id=panel.id,
            slug=panel.slug,
            fields=(),
            origin=origin,
            now=now,
        )
    return panel


async def list_panels(
    session: AsyncSession,
    actor: User,
    *,
    service: str | None = None,
    build: str | None = None,
    population: str | None = None,
    include_all: bool = False,
) -> list[ReferencePanel]:
    """Panels matching the filters; users (and admins without `include_all`) see only
    active panels of active services."""
    if include_all and not is_admin(actor):
        raise PermissionDenied("only admins may list all reference panels")
    query = select(ReferencePanel).order_by(ReferencePanel.display_name, ReferencePanel.slug)
    if service is not None:
        found = await lookup.get_service(session, service, include_inactive=include_all)
        query = query.where(ReferencePanel.service_id == found.id)
    if build is not None:
        query = query.where(ReferencePanel.build == rules.check_build(build))
    if not include_all:
        query = query.join(Service, Service.id == ReferencePanel.service_id).where(
            ReferencePanel.is_active.is_(True), Service.is_active.is_(True)
        )
    panels = list(await session.scalars(query))
    if population is not None:
        # Few panels per hub: filtering the JSON list here keeps SQLite and PostgreSQL alike.
        label = population.strip().lower()
        panels = [p for p in panels if label in (p.populations or [])]
    return panels


async def get_panel(
    session: AsyncSession, actor: User, ref: str, *, service: str | None = None
) -> ReferencePanel:
    """A panel by the hub's id or slug, or the service's own panel id (that of `service`,
    by id or slug, first): users see active panels of active services, admins any."""
    admin = is_admin(actor)
    service_id = None
    if service is not None:
        service_id = (await lookup.get_service(session, service, include_inactive=admin)).id
    if admin:
        return await lookup.get_panel(session, ref, include_inactive=True, service_id=service_id)
    panel = await lookup.get_panel(session, ref, service_id=service_id)
    owner = await session.get(Service, panel.service_id)
    if owner is None or not owner.is_active:
        raise NotFound(f"no reference panel '{ref}'")
    return panel
