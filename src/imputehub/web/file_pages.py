"""Files: my uploads with their reports, sizes and age; delete."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
