"""Users: search, create, role, deactivate, approve sign-up requests, send a password reset, see
their jobs.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
