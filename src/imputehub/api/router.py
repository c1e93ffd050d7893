"""All REST routes, under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from imputehub.api import (
    accounts,
    admin,
    auth,
    credentials,
    files,
    health,
    jobs,
    links,
    panels,
    self_test,
    services,
    uploads,
    users,
)
from imputehub.api import events as events_api
from imputehub.api import notifications as notifications_api
from imputehub.api import webhooks as webhooks_api

api_router = APIRouter(prefix="/api/v1")
# Order matters for speed, not meaning (no two modules share a path): FastAPI tries routes
# one by one, at every level of inclusion, so the routes clients poll (jobs) go first.
for module in (
    jobs,
    health,
    auth,
    accounts,
    users,
    services,
    credentials,
    panels,
    files,
    uploads,
    links,
):
    api_router.include_router(module.router)
api_router.include_router(admin.router)
api_router.include_router(self_test.router)
api_router.include_router(webhooks_api.router)
api_router.include_router(notifications_api.router)
api_router.include_router(events_api.router)
