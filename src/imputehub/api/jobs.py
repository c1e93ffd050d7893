"""Jobs routes (filled in by the jobs work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["jobs"])
