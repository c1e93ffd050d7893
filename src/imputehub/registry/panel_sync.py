"""Panel sync: ask a service which reference panels it offers and mirror them in the registry.

The connector is asked with no transaction open (a remote call can take seconds); the
answer is then written in one transaction: panels new to the hub are added, known ones
updated (and offered again if they had been withdrawn), and panels the service no longer
lists are deactivated — jobs keep pointing at them, new jobs cannot choose them.
The phasing methods and r2 filters the service lists with its panels are recorded in its
`api_config` (see `rules.PHASING_CHOICES`), where job creation looks them up.

A service may list only the panels the caller's account may use (Cloudgene 3), so it is
asked with the platform credential, the one jobs use unless their owner stored an own
credential (None when the service has none; the connector decides whether it can list
without one). Users' own credentials are compared with what this records when they are
stored or verified (`user_credentials.check_panels`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from imputehub.accounts.users import require_admin
from imputehub.connectors.base import PanelInfo
from imputehub.db.models import ReferencePanel, Service, User
from imputehub.db.session import lock_row
from imputehub.domain.errors import InvalidInput, PermanentServiceError, TransientServiceError
from imputehub.registry import lookup, rules
from imputehub.registry.credentials import platform_credential
from imputehub.registry.local_engine import check_panel_fields, free_slug, panel_slug
from imputehub.registry.panels import MAX_SAMPLE_COUNT, MAX_VARIANT_COUNT
from imputehub.runtime import Runtime

SYNC_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    service_id: str
    added: list[str] = field(default_factory=list)  # slugs
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "panel id: why"


async def sync_panels(runtime: Runtime, actor: User, ref: str) -> SyncResult:
    require_admin(actor)
    async with runtime.db.session() as session:
        service = await lookup.get_service(session, ref, include_inactive=True)
        info = lookup.service_info(service)
        credential = platform_credential(runtime.vault, service)
    connector = runtime.connectors.get(info.api_type)
    if connector is None:
        raise PermanentServiceError(
            f"no connector for api_type '{info.api_type}' in this version of imputehub"
        )
    try:
        offered = await asyncio.wait_for(
            connector.list_panels(info, credential), SYNC_TIMEOUT_SECONDS
        )
    except TimeoutError:
        raise TransientServiceError(
            f"{info.slug} did not list its panels within {SYNC_TIMEOUT_SECONDS:g} s"
        ) from None
    now = runtime.clock.now()
    result = SyncResult(service_id=info.id)
    async with runtime.db.session() as session:
        service = await lookup.get_service(session, info.id, include_inactive=True)
        # Two syncs at once (an admin's and the health check's) would both add a new panel.
        await lock_row(session, Service, service.id)
        rows = {
            row.panel_id: row
            for row in await session.scalars(
                select(ReferencePanel).where(ReferencePanel.service_id == service.id)
            )
        }
        seen: set[str] = set()
        for panel in offered:
            if panel.panel_id in seen:
                continue
            seen.add(panel.panel_id)
            try:
                values = _values(panel)
            except InvalidInput as exc:
                result.skipped.append(f"{panel.panel_id}: {exc.message}")
                continue
            row = rows.get(panel.panel_id)
            if row is None:
                slug = await free_slug(
                    session,
                    ReferencePanel,
                    [panel_slug(panel.panel_id), rules.derive_slug(service.slug, panel.panel_id)],
                )
                row = ReferencePanel(
                    service_id=service.id,
                    panel_id=panel.panel_id,
                    slug=slug,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                session.add(row)
                await session.flush()  # the next free-slug check sees this one
                result.added.append(slug)
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = now
                result.updated.append(row.slug)
        for panel_id, row in rows.items():
            if panel_id not in seen and row.is_active:
                row.is_active = False
                row.updated_at = now
                result.deactivated.append(row.slug)
        config = {**(service.api_config or {}), **_choices(offered)}
        if config != (service.api_config or {}):
            service.api_config = rules.check_api_config(config)
            service.updated_at = now
    return result


def _choices(panels: list[PanelInfo]) -> dict[str, list[Any]]:
    """The api_config keys for the phasing methods and r2 filters the panels list (all of
    them, in the service's order); a choice no panel lists keeps what api_config says."""
    phasing = list(dict.fromkeys(p for panel in panels for p in panel.phasing if p))
    r2_filters = list(dict.fromkeys(r for panel in panels for r in panel.r2_filters))
    choices: dict[str, list[Any]] = {}
    if phasing:
        choices[rules.PHASING_CHOICES] = [p[: rules.MAX_CHOICE_LENGTH] for p in phasing]
    if r2_filters:
        choices[rules.R2_FILTER_CHOICES] = r2_filters
    return choices


def _values(panel: PanelInfo) -> dict[str, object]:
    fields = check_panel_fields(
        display_name=panel.display_name[:300],
        build=panel.build,
        populations=panel.populations,
        description=panel.description,
    )
    samples = panel.sample_count
    variants = panel.variant_count
    return {
        "display_name": fields.display_name,
        "build": fields.build,
        "populations": list(fields.populations),
        "sample_count": samples
        if samples is not None and 0 <= samples <= MAX_SAMPLE_COUNT
        else None,
        "variant_count": (
            variants if variants is not None and 0 <= variants <= MAX_VARIANT_COUNT else None
        ),
        "description": fields.description,
        "is_active": True,
    }
