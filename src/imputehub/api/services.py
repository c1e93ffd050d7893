"""Services routes (filled in by the services work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["services"])
