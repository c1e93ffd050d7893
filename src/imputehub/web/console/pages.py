"""Every console page's routes, in one router."""

from __future__ import annotations

from fastapi import APIRouter

from imputehub.web.console import (
    audit,
    overview,
    panels,
    queue,
    self_test,
    services,
    settings_page,
    stats,
    users,
)

router = APIRouter(include_in_schema=False)
for module in (overview, services, self_test, panels, users, queue, stats, audit, settings_page):
    router.include_router(module.router)
