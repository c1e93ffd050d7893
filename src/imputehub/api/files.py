"""Files routes (filled in by the files work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["files"])
