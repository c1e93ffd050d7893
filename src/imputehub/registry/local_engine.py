"""The local engine in the registry: its service and the panels imported into its store.

These use cases serve operator commands run on the hub's machine (`imputehub panels
import`) and the first-start bootstrap: the shell account is the authority there, as for
`imputehub users create`, so no acting user is asked for. Each works in the caller's
transaction. The panel files themselves are the engine's business (engine/panel_import.py);
here only their description becomes (or updates) a ReferencePanel row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import HealthStatus
from imputehub.db.models import ReferencePanel, Service
from imputehub.db.session import lock_writers
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.engine.panel_store import PanelMeta
from imputehub.registry import lookup, rules
from imputehub.registry.panels import (
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_SAMPLE_COUNT,
    MAX_VARIANT_COUNT,
)

log = logging.getLogger("imputehub.registry")

LOCAL_API_TYPE = "local"
_MAX_SLUG_TRIES = 100


@dataclass(frozen=True, kw_only=True)
class PanelFields:
    """A local panel's descriptive fields, checked by the registry rules."""

    display_name: str
    build: str
    populations: tuple[str, ...]
    description: str


def check_panel_fields(
    *, display_name: str, build: str, populations: Iterable[str], description: str = ""
) -> PanelFields:
    """The fields cleaned as the registry stores them (populations lower-cased); check them
    before the (long) import so that the panel files and the row agree."""
    return PanelFields(
        display_name=rules.check_text(
            display_name, field="display_name", max_length=MAX_DISPLAY_NAME_LENGTH
        ),
        build=rules.check_build(build),
        populations=tuple(rules.check_populations(populations)),
        description=rules.check_long_text(
            description, field="description", max_length=MAX_DESCRIPTION_LENGTH
        ),
    )


async def local_service(session: AsyncSession, ref: str) -> Service:
    """The service `ref` (id or slug, inactive ones too), which must be a local engine."""
    try:
        service = await lookup.get_service(session, ref, include_inactive=True)
    except NotFound as exc:
        raise InvalidInput(f"no service '{ref}'", field="service") from exc
    if service.api_type != LOCAL_API_TYPE:
        raise InvalidInput(
            f"service '{service.slug}' is a {service.api_type} service; panels can be imported "
            f"only into a service of type '{LOCAL_API_TYPE}' (the hub's own engine)",
            field="service",
        )
    return service


# Any fixed 64-bit number: names the lock first starts take to register the local engine.
REGISTRATION_LOCK = 0x696D7075746C6F63  # "imputloc"


async def lock_local_registration(session: AsyncSession) -> None:
    """Serialise registrations of the local engine until the transaction ends."""
    await lock_writers(session, REGISTRATION_LOCK, Service)


async def has_local_service(session: AsyncSession) -> bool:
    """Whether any service of type local exists (active or not)."""
    found = await session.scalar(
        select(Service.id).where(Service.api_type == LOCAL_API_TYPE).limit(1)
    )
    return found is not None


async def create_local_service(
    session: AsyncSession,
    *,
    name: str,
    slug: str,
    base_url: str,
    description: str = "",
    now: datetime,
) -> Service:
    """Register a local engine service; `slug` (or a numbered variant if taken)."""
    service = Service(
        name=rules.check_text(name, field="name", max_length=200),
        slug=await free_slug(session, Service, [rules.check_slug(slug)]),
        api_type=LOCAL_API_TYPE,
        base_url=rules.check_base_url(base_url),
        description=description,
        supported_builds=[],  # any build: the panels imported say which
        api_config={},
        health_status=HealthStatus.UNKNOWN.value,
        health_next_run_at=now,  # the worker checks it at once
        created_at=now,
        updated_at=now,
    )
    session.add(service)
    await session.flush()
    log.info(
        "local engine service registered",
        extra={"action": "service_created", "service_id": service.id},
    )
    return service


async def record_local_panel(
    session: AsyncSession,
    service: Service,
    meta: PanelMeta,
    *,
    now: datetime,
    slug: str | None = None,
) -> tuple[ReferencePanel, bool]:
    """Create or update the row of the panel `meta` of `service`; (row, created).

    A new row's slug is `slug`, else the panel id made a slug, whichever is free (else a
    numbered one). An existing row (same service and panel id) keeps its slug and is
    updated and made active again: importing a panel means offering it.
    """
    if service.api_type != LOCAL_API_TYPE:
        raise InvalidInput(f"service '{service.slug}' is not a local engine", field="service")
    fields = check_panel_fields(
        display_name=meta.display_name,
        build=meta.build,
        populations=meta.populations,
        description=meta.description,
    )
    if service.supported_builds and fields.build not in service.supported_builds:
        raise InvalidInput(
            f"service '{service.slug}' does not support build {fields.build} "
            f"(it supports {', '.join(service.supported_builds)})",
            field="build",
        )
    values = {
        "display_name": fields.display_name,
        "build": fields.build,
        "populations": list(fields.populations),
        "sample_count": _count(meta.sample_count, "sample_count", MAX_SAMPLE_COUNT),
        "variant_count": _count(meta.variant_count, "variant_count", MAX_VARIANT_COUNT),
        "contigs": list(meta.contigs),
        "description": fields.description,
        "is_active": True,
    }
    panel = await session.scalar(
        select(ReferencePanel).where(
            ReferencePanel.service_id == service.id, ReferencePanel.panel_id == meta.panel_id
        )
    )
    created = panel is None
    if panel is None:
        candidates = [rules.check_slug(slug)] if slug is not None else []
        candidates += [panel_slug(meta.panel_id), rules.derive_slug(service.slug, meta.panel_id)]
        panel = ReferencePanel(
            service_id=service.id,
            panel_id=meta.panel_id,
            slug=await free_slug(session, ReferencePanel, candidates),
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(panel)
    else:
        for name, value in values.items():
            setattr(panel, name, value)
        panel.updated_at = now
    await session.flush()
    log.info(
        "local reference panel recorded",
        extra={
            "action": "panel_created" if created else "panel_updated",
            "reference_panel_id": panel.id,
            "service_id": service.id,
        },
    )
    return panel, created


def _count(value: int, field: str, maximum: int) -> int:
    if not 0 <= value <= maximum:
        raise InvalidInput(f"{field} must be a whole number from 0 to {maximum}", field=field)
    return value


def panel_slug(panel_id: str) -> str:
    try:
        return rules.check_slug(rules.slugify(panel_id))
    except InvalidInput:  # e.g. an id shaped like a UUID
        return rules.derive_slug("panel", panel_id)


async def free_slug(
    session: AsyncSession, model: type[Service] | type[ReferencePanel], candidates: Sequence[str]
) -> str:
    """The first free candidate, else the last one numbered (`demo-2`, `demo-3`, ...)."""
    for candidate in candidates:
        if await session.scalar(select(model.id).where(model.slug == candidate)) is None:
            return candidate
    base = candidates[-1][: rules.MAX_SLUG_LENGTH - 4]
    for number in range(2, _MAX_SLUG_TRIES):
        candidate = f"{base}-{number}"
        if await session.scalar(select(model.id).where(model.slug == candidate)) is None:
            return candidate
    raise InvalidInput(f"no free slug near '{base}'", field="slug")
