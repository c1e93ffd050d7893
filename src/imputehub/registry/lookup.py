"""Finding services and reference panels by id or slug (panels also by the service's id)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import ServiceInfo
from imputehub.db.models import ReferencePanel, Service
from imputehub.domain.errors import InvalidInput, NotFound


async def get_service(
    session: AsyncSession, ref: str, *, include_inactive: bool = False
) -> Service:
    service = await session.scalar(
        select(Service).where(or_(Service.id == ref, Service.slug == ref))
    )
    if service is None or (not service.is_active and not include_inactive):
        raise NotFound(f"no service '{ref}'")
    return service


async def get_panel(
    session: AsyncSession,
    ref: str,
    *,
    include_inactive: bool = False,
    service_id: str | None = None,
) -> ReferencePanel:
    """A panel by the hub's id or slug, or by the service's own panel id
    (`apps@1000g-phase-3-v5@2.0.0`).

    A service's panel id is unique only within that service: when the caller names a
    service (`service_id`, the hub's id), that service's panel wins; then the hub's id or
    slug; a panel id that still names panels of several services is refused as ambiguous.
    """
    found = list(
        await session.scalars(
            select(ReferencePanel)
            .where(
                or_(
                    ReferencePanel.id == ref,
                    ReferencePanel.slug == ref,
                    ReferencePanel.panel_id == ref,
                )
            )
            .order_by(ReferencePanel.id)
        )
    )
    if not include_inactive:
        found = [panel for panel in found if panel.is_active]
    if service_id is not None:
        found = [panel for panel in found if panel.service_id == service_id] or found
    by_hub_name = [panel for panel in found if ref in (panel.id, panel.slug)]
    if by_hub_name:
        return by_hub_name[0]
    if not found:
        raise NotFound(f"no reference panel '{ref}'")
    if len(found) > 1:
        slugs = await session.scalars(
            select(Service.slug)
            .where(Service.id.in_([panel.service_id for panel in found]))
            .order_by(Service.slug)
        )
        raise InvalidInput(
            f"panel id '{ref}' is offered by several services ({', '.join(slugs)}): "
            "name the service too, or the panel by its hub id or slug",
            code="ambiguous_panel",
            field="reference_panel_id",
        )
    return found[0]


def service_info(service: Service) -> ServiceInfo:
    """What a connector is told about `service` (a copy: no database row leaves the session)."""
    return ServiceInfo(
        id=service.id,
        slug=service.slug,
        api_type=service.api_type,
        base_url=service.base_url,
        api_config=dict(service.api_config or {}),
    )
