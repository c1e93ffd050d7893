"""All REST routes, under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from imputehub.api import (
    auth,
    credentials,
    files,
    health,
    jobs,
    links,
    panels,
    services,
    uploads,
    users,
)

api_router = APIRouter(prefix="/api/v1")
for module in (health, auth, users, services, credentials, panels, files, uploads, jobs, links):
    api_router.include_router(module.router)
