"""The console's first page: what needs an admin now (sign-ups waiting, unhealthy or paused
services, maintenance) and where to go for the rest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imputehub.accounts import signup
from imputehub.api.deps import SessionDep
from imputehub.connectors.base import HealthStatus
from imputehub.operations import hub_settings
from imputehub.registry import services
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def overview(request: Request, session: SessionDep, opened: AdminSignedIn) -> Response:
    loads = await services.service_loads(session)
    return render_console(
        request,
        "console/overview.html",
        {
            "pending": await signup.pending(session),
            "loads": loads,
            "troubled": [
                load for load in loads if load.service.health_status != HealthStatus.HEALTHY
            ],
            "paused": [load for load in loads if load.service.is_paused],
            "hub": await hub_settings.load(session),
        },
        opened=opened,
    )
