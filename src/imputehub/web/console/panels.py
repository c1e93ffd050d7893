"""Panels: per service, edit display data, activate or deactivate; import a local-engine panel."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
