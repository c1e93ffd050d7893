"""Services: list with health and load, register and edit each kind, credentials, health history,
check now, sync panels, pause, deactivate.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
