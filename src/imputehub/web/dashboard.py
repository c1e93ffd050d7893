"""The dashboard: my active jobs with live progress, recent results, counts by status,
services with their health and load, unread notifications."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imputehub.web.session_auth import SignedIn
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard(request: Request, opened: SignedIn) -> Response:
    return render(request, "dashboard.html", {}, opened=opened)
