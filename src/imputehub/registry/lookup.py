"""Finding services and reference panels by id or slug."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import ReferencePanel, Service
from imputehub.domain.errors import NotFound


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
    session: AsyncSession, ref: str, *, include_inactive: bool = False
) -> ReferencePanel:
    panel = await session.scalar(
        select(ReferencePanel).where(or_(ReferencePanel.id == ref, ReferencePanel.slug == ref))
    )
    if panel is None or (not panel.is_active and not include_inactive):
        raise NotFound(f"no reference panel '{ref}'")
    return panel
